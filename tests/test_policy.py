"""Gaussian MLP policy: distribution, initialisation, functional forward, adaptation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from maml_rl.policies import NormalMLPPolicy
from maml_rl.policies.normal_mlp import _fast_tanh_, fast_tanh, gaussian_kl, gaussian_log_prob
from maml_rl.utils.torch_utils import flat, stack_params


@pytest.fixture
def policy() -> NormalMLPPolicy:
    torch.manual_seed(0)
    return NormalMLPPolicy(10, 10, hidden_sizes=(16, 8))


def test_distribution_and_initialisation(policy: NormalMLPPolicy) -> None:
    obs = torch.randn(7, 10)
    dist = policy(obs)
    assert dist.mean.shape == (7, 10)
    np_std = dist.stddev
    torch.testing.assert_close(np_std, torch.full((7, 10), 0.5))
    actions = dist.sample()
    manual = Normal(dist.mean, 0.5).log_prob(actions).sum(-1)
    torch.testing.assert_close(dist.log_prob(actions), manual)
    for module in policy.modules():
        if isinstance(module, torch.nn.Linear):
            bound = math.sqrt(6.0 / (module.in_features + module.out_features))  # Xavier uniform
            assert module.weight.abs().max() <= bound and torch.all(module.bias == 0)
            assert module.weight.std() > bound / 4


def test_std_floor(policy: NormalMLPPolicy) -> None:
    with torch.no_grad():
        policy.log_std.fill_(-50.0)
    torch.testing.assert_close(policy(torch.zeros(1, 10)).stddev, torch.full((1, 10), policy.min_std))


def test_functional_forward_equals_module_with_those_parameters(policy: NormalMLPPolicy) -> None:
    obs = torch.randn(5, 10)
    params = {n: p + 0.1 * torch.randn_like(p) for n, p in policy.named_parameters()}
    clone = NormalMLPPolicy(**policy.config())
    clone.load_state_dict({n: p.detach() for n, p in params.items()})
    torch.testing.assert_close(policy(obs, params).mean, clone(obs).mean)
    torch.testing.assert_close(policy(obs, params).stddev, clone(obs).stddev)


def test_adapted_forward_is_a_manual_sgd_step(policy: NormalMLPPolicy) -> None:
    obs, actions = torch.randn(20, 10), torch.randn(20, 10)
    loss = -policy(obs).log_prob(actions).mean()
    adapted = policy.update_params(loss, step_size=0.3, first_order=True)
    grads = torch.autograd.grad(-policy(obs).log_prob(actions).mean(), list(policy.parameters()))
    manual = {n: p.detach() - 0.3 * g for (n, p), g in zip(policy.named_parameters(), grads)}
    for name in manual:
        torch.testing.assert_close(adapted[name].detach(), manual[name])
    clone = NormalMLPPolicy(**policy.config())
    clone.load_state_dict(manual)
    torch.testing.assert_close(policy(obs, adapted).mean, clone(obs).mean)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_parameters_receive_gradients_through_adaptation(policy: NormalMLPPolicy, first_order: bool) -> None:
    obs, actions = torch.randn(20, 10), torch.randn(20, 10)
    adapted = policy.update_params(-policy(obs).log_prob(actions).mean(), step_size=0.5, first_order=first_order)
    outer = -policy(obs, adapted).log_prob(actions + 1).mean()
    grads = torch.autograd.grad(outer, list(policy.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_stacked_forward_equals_functional_forward_per_task(policy: NormalMLPPolicy) -> None:
    k = 3
    obs = torch.randn(k, 6, 10)
    stacked = {n: p.detach().unsqueeze(0) + 0.05 * torch.randn(k, *p.shape) for n, p in policy.named_parameters()}
    dist = policy.forward_stacked(obs, stacked)
    for i in range(k):
        single = policy(obs[i], {n: p[i] for n, p in stacked.items()})
        torch.testing.assert_close(dist.mean[i], single.mean)
        torch.testing.assert_close(dist.stddev[i], single.stddev)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "elu"])
def test_fisher_vector_product_is_the_kl_hessian(nonlinearity: str) -> None:
    """Closed-form Gauss-Newton product == double back-propagation of the weighted KL."""
    torch.manual_seed(1)
    policy = NormalMLPPolicy(4, 3, hidden_sizes=(5, 6), nonlinearity=nonlinearity).double()
    k, n = 3, 7
    obs = torch.randn(k, n, 4, dtype=torch.float64)
    weights = torch.rand(k, n, dtype=torch.float64)
    weights[0, 5:] = 0.0  # padding
    offsets = {name: 0.1 * torch.randn(k, *p.shape, dtype=torch.float64) for name, p in policy.named_parameters()}
    offsets["log_std"][2, 0] = -40.0  # one task's first std sits on the floor

    def stacked() -> dict:
        return {name: p.unsqueeze(0) + offsets[name] for name, p in policy.named_parameters()}

    with torch.no_grad():
        old = policy.forward_stacked(obs, stacked())
        old = Independent(Normal(old.mean.clone(), old.stddev.clone()), 1)
    kl = (kl_divergence(old, policy.forward_stacked(obs, stacked())) * weights).sum()
    params = list(policy.parameters())
    grad = flat(torch.autograd.grad(kl, params, create_graph=True))
    product = policy.fisher_vector_product(obs, {k_: v.detach() for k_, v in stacked().items()}, weights)
    for _ in range(3):
        vector = torch.randn(grad.numel(), dtype=torch.float64)
        reference = flat(torch.autograd.grad(grad @ vector, params, retain_graph=True))
        torch.testing.assert_close(product(vector), reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "elu"])
@pytest.mark.parametrize(("hidden", "obs_dim", "act_dim"), [((64, 64), 10, 10), ((7,), 3, 2), ((12, 5, 9), 4, 3)])
def test_log_prob_vjp_equals_autograd_bitwise(hidden, obs_dim: int, act_dim: int, nonlinearity: str, dtype) -> None:
    """The hand-written gradient of sum c log pi is autograd's, bit for bit: padding rows,
    a standard deviation on the floor, negative and zero cotangents, every nonlinearity and
    depth (the inner steps of training rely on this to reproduce earlier results exactly)."""
    torch.manual_seed(5)
    policy = NormalMLPPolicy(obs_dim, act_dim, hidden_sizes=hidden, nonlinearity=nonlinearity, min_std=0.05).to(dtype)
    k, n = 6, 16
    params = {name: (p.detach().unsqueeze(0) + 0.3 * torch.randn(k, *p.shape, dtype=dtype)).requires_grad_()
              for name, p in policy.named_parameters()}
    with torch.no_grad():
        params["log_std"][1, 0] = math.log(0.01)  # below the floor: no gradient through the clamp
    obs = torch.randn(k, n, obs_dim, dtype=dtype)
    actions = torch.randn(k, n, act_dim, dtype=dtype)
    cotangent = torch.randn(k, n, dtype=dtype)
    cotangent[2, 9:] = 0.0  # padding
    mean, log_std = policy.stacked_mean_log_std(obs, params)
    objective = (gaussian_log_prob(actions, mean, log_std) * cotangent).sum()
    reference = torch.autograd.grad(objective, list(params.values()))
    detached = {name: p.detach() for name, p in params.items()}
    manual = policy.stacked_log_prob_vjp(obs, actions, cotangent, detached)
    assert list(manual) == list(params)
    for name, ref in zip(params, reference):
        assert torch.equal(manual[name], ref), name
        assert not manual[name].requires_grad
    assert torch.all(manual["log_std"][1, 0] == 0) and torch.all(manual["log_std"][1, 1:] != 0)


def test_update_params_on_stacked_parameters_gives_per_task_gradients(policy: NormalMLPPolicy) -> None:
    k = 2
    obs, actions = torch.randn(k, 9, 10), torch.randn(k, 9, 10)
    stacked = stack_params(policy.meta_parameters(), k)
    loss = -policy.forward_stacked(obs, stacked).log_prob(actions).mean(1).sum()
    adapted = policy.update_params(loss, stacked, step_size=0.1, first_order=True)
    for i in range(k):
        single = policy.update_params(-policy(obs[i]).log_prob(actions[i]).mean(), step_size=0.1, first_order=True)
        for name in single:
            torch.testing.assert_close(adapted[name][i], single[name])


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="nonlinearity"):
        NormalMLPPolicy(2, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="min_std"):
        NormalMLPPolicy(2, 2, init_std=0.1, min_std=0.2)


def test_gaussian_log_prob_and_kl_equal_torch_distributions() -> None:
    g = torch.Generator().manual_seed(2)
    k, n, d = 3, 5, 4
    mean, old_mean, actions = (torch.randn(k, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    log_std, old_log_std = (0.5 * torch.randn(k, 1, d, generator=g, dtype=torch.float64) for _ in range(2))
    new = Independent(Normal(mean, log_std.exp().expand_as(mean)), 1)
    old = Independent(Normal(old_mean, old_log_std.exp().expand_as(old_mean)), 1)
    torch.testing.assert_close(gaussian_log_prob(actions, mean, log_std), new.log_prob(actions), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gaussian_kl(old_mean, old_log_std, mean, log_std), kl_divergence(old, new),
                               rtol=1e-12, atol=1e-12)
    assert torch.all(gaussian_kl(mean, log_std, mean, log_std) == 0)  # exactly zero at the old policy


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "elu"])
def test_stacked_mean_function_equals_stacked_forward_bitwise(nonlinearity: str) -> None:
    """The sampler's per-step mean (in-place activations) is the stacked forward's, bit for bit."""
    torch.manual_seed(3)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(16, 8), nonlinearity=nonlinearity)
    params = {name: p.detach().unsqueeze(0) + 0.1 * torch.randn(4, *p.shape) for name, p in policy.named_parameters()}
    obs = torch.randn(4, 6, 10)
    with torch.no_grad():
        mean, std = policy.stacked_mean_std(obs, params)
        assert torch.equal(policy.stacked_mean_function(params)(obs), mean)
        assert torch.equal(policy.stacked_std(params), std)
        torch.testing.assert_close(mean, policy.forward_stacked(obs, params).mean)


def test_fast_tanh_is_tanh_to_two_ulp_and_differentiable_twice() -> None:
    x = torch.cat([torch.linspace(-20, 20, 20001), torch.randn(5000) * 3, torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    exact = torch.tanh(x.double())
    fast = fast_tanh(x)
    ulp = torch.from_numpy(np.spacing(np.abs(exact.float().numpy()))).double()
    assert float(((fast.double() - exact).abs() / ulp).max()) <= 2.0
    assert torch.equal(fast, torch.clamp(fast, -1, 1))
    # the in-place sampling variant gives the same bits as the autograd one
    inplace = x.clone()
    _fast_tanh_(inplace)
    assert torch.equal(inplace, fast)
    # first and second derivatives against finite differences (float64)
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast_tanh, (z,))
    assert torch.autograd.gradgradcheck(fast_tanh, (z,))
    # strided input and other dtypes
    strided = torch.randn(8, 6)[:, ::2]
    torch.testing.assert_close(fast_tanh(strided), torch.tanh(strided), atol=2e-7, rtol=0)
    half = torch.randn(5, dtype=torch.bfloat16)
    assert torch.equal(fast_tanh(half), torch.tanh(half))


@pytest.mark.parametrize("seed", [0, 1, 2, 4])
@pytest.mark.parametrize(("hidden", "obs_dim", "act_dim"), [((16, 16), 13, 5), ((64, 64), 10, 10), ((10,), 13, 5)])
def test_a_tasks_actions_do_not_depend_on_its_place_in_the_stack(hidden, obs_dim: int, act_dim: int,
                                                                 seed: int) -> None:
    """The sampler's forward of task k is bitwise the same whether k is evaluated alone, with
    its neighbours or at another offset of the stacked tensors (a multiprocessing worker holds
    a subset of the tasks); without MKL's strict reproducibility mode some widths differ in
    the last bit depending on the matrices' alignment, and a batch of one matrix takes
    another kernel."""
    torch.manual_seed(seed)
    policy = NormalMLPPolicy(obs_dim, act_dim, hidden_sizes=hidden)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, 5)
    params = {n: p + 0.01 * torch.randn_like(p) for n, p in params.items()}
    obs = torch.randn(5, 3, obs_dim)
    with torch.inference_mode():
        full = policy.stacked_mean_function(params)(obs.clone())
        for a, b in ((0, 1), (2, 3), (4, 5), (1, 4), (3, 5)):
            part = policy.stacked_mean_function({n: p[a:b] for n, p in params.items()})(obs[a:b].clone())
            assert torch.equal(part, full[a:b]), (a, b)
