"""MAML-TRPO as mathematics: meta-gradients, Hessian-vector products, CG, line search."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from maml_rl.episode import EpisodeBatch
from maml_rl.metalearners import MAMLTRPO
from maml_rl.policies import NormalMLPPolicy
from maml_rl.utils.optimization import conjugate_gradient
from maml_rl.utils.torch_utils import flat, fresh_leaves, stack_params


def synthetic_batch(k: int, t: int, b: int, seed: int, dtype=torch.float64) -> EpisodeBatch:
    """Random padded episodes with given advantages (no environment needed)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (k, b), generator=g)
    lengths[:, 0] = t
    mask = (torch.arange(t).view(1, t, 1) < lengths.unsqueeze(1)).to(dtype)
    batch = EpisodeBatch(
        observations=torch.randn(k, t, b, 2, generator=g, dtype=dtype) * mask[..., None],
        actions=torch.randn(k, t, b, 2, generator=g, dtype=dtype) * mask[..., None],
        rewards=torch.randn(k, t, b, generator=g, dtype=dtype) * mask, mask=mask, lengths=lengths,
        terminated=torch.ones(k, b, dtype=torch.bool), success=torch.zeros(k, b, dtype=torch.bool),
        last_observations=torch.zeros(k, b, 2, dtype=dtype))
    batch.advantages = torch.randn(k, t, b, generator=g, dtype=dtype) * mask
    return batch


def tiny_learner(first_order: bool, seed: int = 0, **kwargs) -> MAMLTRPO:
    torch.manual_seed(seed)
    policy = NormalMLPPolicy(2, 2, hidden_sizes=(4,), init_std=0.7).double()
    defaults = dict(fast_lr=0.4, num_steps=2, first_order=first_order, max_kl=1e-2, cg_iters=50,
                    cg_damping=0.0, ls_max_steps=15, ls_backtrack_ratio=0.5)
    defaults.update(kwargs)
    return MAMLTRPO(policy, **defaults)


@pytest.fixture
def data() -> tuple[list[EpisodeBatch], EpisodeBatch]:
    return [synthetic_batch(2, 5, 3, seed) for seed in (1, 2)], synthetic_batch(2, 6, 3, 3)


def _objective_and_gradient(learner: MAMLTRPO, train, valid, old):
    params = list(learner.policy.parameters())
    loss = learner.surrogate(train, valid, old).loss
    return loss, flat(torch.autograd.grad(loss, params))


def test_second_order_meta_gradient_matches_central_differences(data) -> None:
    train, valid = data
    second, first = tiny_learner(False), tiny_learner(True)
    old = second.surrogate(train, valid).old
    _, grad_second = _objective_and_gradient(second, train, valid, old)
    _, grad_first = _objective_and_gradient(first, train, valid, old)
    params = list(second.policy.parameters())
    theta = parameters_to_vector(params).detach().clone()
    eps = 1e-6
    numeric = torch.zeros_like(theta)
    with torch.enable_grad():
        for i in range(theta.numel()):
            values = []
            for sign in (1, -1):
                shifted = theta.clone()
                shifted[i] += sign * eps
                vector_to_parameters(shifted, params)
                values.append(second.surrogate(train, valid, old).loss.item())
            numeric[i] = (values[0] - values[1]) / (2 * eps)
    vector_to_parameters(theta, params)
    torch.testing.assert_close(grad_second, numeric, rtol=1e-6, atol=1e-8)
    # First-order MAML drops the Hessian terms of the adaptation: a different gradient.
    assert (grad_first - numeric).norm() > 1e-2 * numeric.norm()


def test_first_and_second_order_differ_only_through_the_inner_hessian(data) -> None:
    # Both branches adapt (two inner steps each, create_graph or not). With fast_lr = 0 the
    # inner Hessian term lr * d^2 L_in is zero and the meta-gradients must coincide; with
    # fast_lr > 0 they must differ, by an amount that vanishes linearly with fast_lr.
    train, valid = data

    def gradients(lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        second, first = tiny_learner(False, fast_lr=lr), tiny_learner(True, fast_lr=lr)
        old = second.surrogate(train, valid).old
        return (_objective_and_gradient(second, train, valid, old)[1],
                _objective_and_gradient(first, train, valid, old)[1])

    second, first = gradients(0.0)
    torch.testing.assert_close(second, first, rtol=1e-12, atol=1e-14)
    gaps = []
    for lr in (0.02, 0.01):
        second, first = gradients(lr)
        gaps.append(float((second - first).norm()))
    assert gaps[1] > 1e-6 * float(second.norm())
    assert gaps[0] / gaps[1] == pytest.approx(2.0, rel=0.1)  # O(fast_lr)


def test_conjugate_gradient_solves_spd_system() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64)
    matrix = a @ a.T + 0.5 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    x, iterations = conjugate_gradient(lambda v: matrix @ v, b, max_iters=100, residual_tol=1e-24)
    torch.testing.assert_close(x, torch.linalg.solve(matrix, b), rtol=1e-9, atol=1e-9)
    # Exact in n = 12 steps in exact arithmetic; to a residual of 1e-12 in float64 rounding costs a
    # step or two (14 with MKL's strict reproducible mode). Steepest descent would need hundreds
    # (condition number 53).
    assert iterations <= 12 + 2
    x5, five = conjugate_gradient(lambda v: matrix @ v, b, max_iters=5)
    assert five == 5 and torch.linalg.norm(matrix @ x5 - b) < torch.linalg.norm(b)


@pytest.mark.parametrize("first_order", [False, True])
def test_kl_hessian_vector_product_matches_finite_differences(data, first_order: bool) -> None:
    """H v of the mean KL through the adaptation vs central differences of its gradient.

    Second order: the KL of the re-adapted policy as it is. First order: the adaptation
    displacement c_i = theta_i' - theta is held at its value (the first-order objective).
    """
    train, valid = data
    learner = tiny_learner(first_order)
    params = list(learner.policy.parameters())
    current = learner.surrogate(train, valid)
    assert current.kl.item() == pytest.approx(0.0, abs=1e-14)
    grad_at_old = flat(torch.autograd.grad(current.kl, params, retain_graph=True))
    assert grad_at_old.abs().max() < 1e-12  # KL is minimal at the old policy
    theta = parameters_to_vector(params).detach().clone()
    displacement = {n: (current.adapted[n] - p.unsqueeze(0)).detach()
                    for n, p in learner.policy.named_parameters()}
    steps = valid.packed_steps()
    old = learner.policy.forward_stacked(steps.observations, {n: a.detach() for n, a in current.adapted.items()})

    def kl(at: torch.Tensor) -> torch.Tensor:
        vector_to_parameters(at, params)
        if not first_order:
            return learner.surrogate(train, valid, current.old).kl
        adapted = {n: p.unsqueeze(0) + displacement[n] for n, p in learner.policy.named_parameters()}
        new = learner.policy.forward_stacked(steps.observations, adapted)
        per_step = torch.distributions.kl_divergence(old, new)
        return ((per_step * learner.kl_weights(valid)).sum())

    def kl_gradient(at: torch.Tensor) -> torch.Tensor:
        return flat(torch.autograd.grad(kl(at), params))

    vector = torch.randn(theta.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    eps = 1e-5
    numeric = (kl_gradient(theta + eps * vector) - kl_gradient(theta - eps * vector)) / (2 * eps)
    vector_to_parameters(theta.clone(), params)
    assert kl(theta.clone()).item() == pytest.approx(current.kl.item(), abs=1e-14)
    vector_to_parameters(theta.clone(), params)
    generic = learner.hessian_vector_product(learner.surrogate(train, valid).kl, damping=0.0)(vector)
    torch.testing.assert_close(generic, numeric, rtol=1e-5, atol=1e-7)
    used = learner.kl_hessian_product(valid, learner.surrogate(train, valid))(vector)
    torch.testing.assert_close(used, numeric, rtol=1e-5, atol=1e-7)  # closed-form Fisher for first order


def test_first_order_fisher_against_the_full_re_adapted_kl(data) -> None:
    """The first-order Hessian against the KL that re-adapts from the perturbed parameters.

    The line search measures KL(theta) = mean KL(pi_old || pi_{theta'(theta)}) with
    theta'(theta) = theta - lr grad L_in(theta) recomputed at every theta. At the old parameters
    its exact Hessian is J^T F J with J = d theta' / d theta = I - lr d^2 L_in (the second
    derivatives of the mean drop out because dKL/dmu = 0 there); second-order double
    back-propagation gives exactly that. First-order MAML sets J = I everywhere, in the gradient
    and therefore also in the Hessian it uses (the closed-form Fisher F): the two agree exactly
    when the inner step does not depend on theta (fast_lr = 0) and differ by O(fast_lr) otherwise.
    """
    train, valid = data
    vector = torch.randn(sum(p.numel() for p in tiny_learner(True).policy.parameters()), dtype=torch.float64,
                         generator=torch.Generator().manual_seed(7))

    def quadratic_forms(lr: float) -> tuple[float, float, float]:
        first, second = tiny_learner(True, fast_lr=lr), tiny_learner(False, fast_lr=lr)
        params = list(first.policy.parameters())
        current = first.surrogate(train, valid)
        fisher = float(vector @ first.kl_hessian_product(valid, current)(vector))
        exact = float(vector @ second.hessian_vector_product(second.surrogate(train, valid).kl, 0.0)(vector))
        theta = parameters_to_vector(params).detach().clone()
        eps = 1e-4
        values = []
        for sign in (1, -1):  # the KL value re-adapts from theta +- eps v (inner gradients recomputed)
            vector_to_parameters(theta + sign * eps * vector, params)
            values.append(first.surrogate(train, valid, current.old).kl.item())
        vector_to_parameters(theta, params)
        numeric = (values[0] + values[1]) / eps ** 2  # KL(theta) = 0, so v^T H v = (KL+ + KL-) / eps^2
        return fisher, exact, numeric

    fisher, exact, numeric = quadratic_forms(0.0)
    assert fisher == pytest.approx(exact, rel=1e-10) and numeric == pytest.approx(exact, rel=1e-5)
    gaps = []
    for lr in (0.002, 0.001):
        fisher, exact, numeric = quadratic_forms(lr)
        assert numeric == pytest.approx(exact, rel=1e-5)  # the real, re-adapted KL's curvature
        gaps.append(abs(fisher - exact))
    assert gaps[1] > 1e-8 * abs(exact)
    assert gaps[0] / gaps[1] == pytest.approx(2.0, rel=0.1)  # the first-order error is O(fast_lr)


class _NeverImproves(MAMLTRPO):
    """A learner whose candidate surrogates never improve (only for the line-search test)."""

    def trial_values(self, vectors, train_batches, valid, old):
        return [(loss + 1.0, kl) for loss, kl in super().trial_values(vectors, train_batches, valid, old)]


@pytest.mark.parametrize(("ls_threads", "stack_rows"), [(1, 0), (3, 0), (3, 10**9)])
def test_line_search_restores_parameters_bitwise(data, ls_threads: int, stack_rows: int) -> None:
    train, valid = data
    learner = tiny_learner(True, ls_threads=ls_threads, ls_stack_rows=stack_rows)
    learner.__class__ = _NeverImproves
    before = [p.detach().clone() for p in learner.policy.parameters()]
    log = learner.step(train, valid)
    assert not log["ls_accepted"] and log["ls_step"] == -1
    for old, new in zip(before, learner.policy.parameters()):
        assert torch.equal(old, new)


@pytest.mark.parametrize("first_order", [False, True])
def test_accepted_step_improves_surrogate_within_trust_region(data, first_order: bool) -> None:
    train, valid = data
    learner = tiny_learner(first_order, cg_damping=1e-3, max_kl=5e-3)
    start = learner.surrogate(train, valid)
    log = learner.step(train, valid)
    assert log["ls_accepted"]
    after = learner.surrogate(train, valid, start.old)
    assert after.loss.item() < start.loss.item()
    assert after.kl.item() <= 5e-3
    assert after.kl.item() > 1e-4  # a real step, not a vanishing one
    assert log["loss_after"] == pytest.approx(after.loss.item())


def test_short_meta_training_improves_post_adaptation_return() -> None:
    """A learning test on the AWAKE tasks (environment's own reward, small network, 60 batches
    of 4 tasks x 8 episodes, about 5 s). The mean post-adaptation return of the last 15
    batches must beat that of the first 15 by 25 % of its magnitude. Over seeds 0-5 the
    observed gain is 36-52 % (seed 0: -56.5 -> -32.7), so the margin is robust, not tuned."""
    from maml_rl.envs.dynamics import SteeringDynamics
    from maml_rl.envs.tasks import sample_tasks
    from maml_rl.families.awake.environment import AwakeEnvironment
    from maml_rl.metalearners import meta_update
    from maml_rl.samplers import SamplerSpec, VectorizedSampler
    from maml_rl.seeding import task_rng

    torch.manual_seed(0)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(32, 32))
    learner = MAMLTRPO(policy, fast_lr=0.001, num_steps=1, first_order=True, gamma=1.0, gae_lambda=0.99,
                       max_kl=1e-2, cg_iters=20, cg_damping=1e-5, ls_max_steps=20, ls_backtrack_ratio=0.6)
    environment = AwakeEnvironment(SteeringDynamics(max_time=50), "horizontal")
    sampler = VectorizedSampler(SamplerSpec(environment, 8, 0, policy.config()), policy)
    returns = [meta_update(learner, sampler, sample_tasks(task_rng(0, batch), 4), batch)["valid_return"]
               for batch in range(60)]
    first, last = sum(returns[:15]) / 15, sum(returns[-15:]) / 15
    assert last > first + 0.25 * abs(first), (first, last)


@pytest.mark.parametrize("first_order", [False, True])
def test_stored_adaptation_and_value_only_surrogate_equal_a_full_re_adaptation(first_order: bool) -> None:
    """The outer step may reuse the adaptation computed while sampling (first order) and
    evaluates line-search trials without a graph: both give exactly the values (and the
    gradient) of a full re-adaptation from the meta-parameters."""
    from maml_rl.envs.dynamics import SteeringDynamics
    from maml_rl.envs.tasks import sample_tasks
    from maml_rl.families.awake.environment import AwakeEnvironment
    from maml_rl.samplers import SamplerSpec, VectorizedSampler
    from maml_rl.seeding import task_rng

    torch.manual_seed(0)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(16, 16))
    learner = MAMLTRPO(policy, fast_lr=0.01, num_steps=2, first_order=first_order, gamma=1.0, gae_lambda=0.99)
    environment = AwakeEnvironment(SteeringDynamics(max_time=30), "horizontal")
    sampler = VectorizedSampler(SamplerSpec(environment, 6, 0, policy.config()), policy)
    train, valid = learner.sample(sampler, sample_tasks(task_rng(0, 0), 3), 0)
    params = list(policy.parameters())
    stored = learner.surrogate(train, valid)
    stored_grad = flat(torch.autograd.grad(stored.loss, params, retain_graph=True))
    learner._adaptation = None  # force the re-adaptation
    full = learner.surrogate(train, valid)
    assert torch.equal(stored.loss, full.loss)
    assert torch.equal(stored_grad, flat(torch.autograd.grad(full.loss, params, retain_graph=True)))
    for name in full.adapted:
        assert torch.equal(stored.adapted[name], full.adapted[name])
    vector_to_parameters(parameters_to_vector(params).detach() + 1e-3, params)  # a line-search trial
    with torch.no_grad():
        values = learner.surrogate(train, valid, full.old)
    graph = learner.surrogate(train, valid, full.old)
    assert torch.equal(values.loss, graph.loss) and torch.equal(values.kl, graph.kl)
    assert values.kl.item() > 0 and not values.loss.requires_grad


def _awake_round(hidden: int = 16, tasks: int = 3, episodes: int = 6, **kwargs):
    """A learner and one sampled meta-batch of AWAKE tasks (float32, as in training)."""
    from maml_rl.envs.dynamics import SteeringDynamics
    from maml_rl.envs.tasks import sample_tasks
    from maml_rl.families.awake.environment import AwakeEnvironment
    from maml_rl.samplers import SamplerSpec, VectorizedSampler
    from maml_rl.seeding import task_rng

    torch.manual_seed(0)
    policy = NormalMLPPolicy(10, 10, hidden_sizes=(hidden, hidden))
    settings = dict(fast_lr=0.01, num_steps=2, first_order=True, gamma=1.0, gae_lambda=0.99, max_kl=1e-3,
                    cg_iters=10, cg_damping=1e-5, ls_max_steps=10, ls_backtrack_ratio=0.6)
    settings.update(kwargs)
    learner = MAMLTRPO(policy, **settings)
    environment = AwakeEnvironment(SteeringDynamics(max_time=30), "horizontal")
    sampler = VectorizedSampler(SamplerSpec(environment, episodes, 0, policy.config()), policy)
    return learner, sampler, lambda batch: sample_tasks(task_rng(3, batch), tasks)


@pytest.mark.parametrize(("tasks", "nonlinearity", "block_size"), [(3, "tanh", 16), (8, "tanh", 64), (5, "relu", 4)])
def test_first_order_point_without_autograd_equals_the_autograd_path(tasks: int, nonlinearity: str,
                                                                      block_size: int) -> None:
    """``current_point`` from one value-only forward pass: surrogate, KL, old policy, gradient
    and damped Fisher products equal those of the graph path (``surrogate``, autograd's
    gradient, ``kl_hessian_product``) bit for bit, for task counts whose 1/K is inexact."""
    learner, sampler, make_tasks = _awake_round(tasks=tasks, block_size=block_size)
    if nonlinearity != "tanh":
        torch.manual_seed(0)
        learner.policy = NormalMLPPolicy(10, 10, hidden_sizes=(16, 16), nonlinearity=nonlinearity)
        sampler.policy = learner.policy
    train, valid = learner.sample(sampler, make_tasks(0), 0)
    fast, fast_grad, fast_hvp = learner.current_point(train, valid)
    assert not fast.loss.requires_grad  # the value-only path was taken
    params = list(learner.policy.parameters())
    graph = learner.surrogate(train, valid)
    graph_grad = flat(torch.autograd.grad(graph.loss, params))
    graph_hvp = learner.kl_hessian_product(valid, graph)
    assert torch.equal(fast.loss, graph.loss.detach()) and torch.equal(fast.kl, graph.kl.detach())
    for name in ("mean", "log_std", "log_prob"):
        assert torch.equal(getattr(fast.old, name), getattr(graph.old, name)), name
    assert torch.equal(fast_grad, graph_grad) and fast_grad.abs().sum() > 0
    for seed in range(3):
        vector = torch.randn(fast_grad.shape, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(fast_hvp(vector), graph_hvp(vector))
    learner._adaptation = None  # no stored adaptation: the graph path
    slow, slow_grad, _ = learner.current_point(train, valid)
    assert slow.loss.requires_grad and torch.equal(slow_grad, graph_grad)


@pytest.mark.parametrize("stack_rows", [0, 10**9])
def test_concurrent_line_search_trials_equal_trials_one_at_a_time(stack_rows: int) -> None:
    """trial_values with worker threads, and with the trials stacked into one pass, gives bit
    for bit the values of evaluating each trial alone, and those of the plain way: the policy
    set to the trial, then ``surrogate``."""
    learner, sampler, tasks = _awake_round(ls_threads=3, ls_stack_rows=stack_rows)
    train, valid = learner.sample(sampler, tasks(0), 0)
    assert learner.stacks_trials(train) == (stack_rows > 0)
    current = learner.surrogate(train, valid)
    params = list(learner.policy.parameters())
    start = parameters_to_vector(params).detach().clone()
    direction = torch.randn(start.shape, generator=torch.Generator().manual_seed(1))
    vectors = [start + 1e-2 * 0.5 ** t * direction for t in range(5)]
    together = learner.trial_values(vectors, train, valid, current.old)  # 1 here + 4 in 2 threads, or 5 stacked
    alone = [learner.trial_values([v], train, valid, current.old)[0] for v in vectors]
    assert together == alone
    assert len(set(together)) == 5 and all(kl > 0 for _, kl in together)  # five different trials
    for vector, values in zip(vectors, alone):
        vector_to_parameters(vector, params)
        with torch.no_grad():
            plain = learner.surrogate(train, valid, current.old)
        assert (plain.loss.item(), plain.kl.item()) == values


def test_meta_training_is_identical_for_any_number_of_line_search_threads() -> None:
    """Every logged number (timings aside) and the final meta-parameters agree bit for bit
    between 1, 2 and 3 concurrent trials, in threads or stacked, with acceptances at different
    trials, which fall in different places of the groups of 2 and 3."""
    def training(ls_threads: int, stack_rows: int = 0) -> tuple[list[dict], torch.Tensor]:
        from maml_rl.metalearners import meta_update

        learner, sampler, tasks = _awake_round(ls_threads=ls_threads, ls_stack_rows=stack_rows)
        rows = [meta_update(learner, sampler, tasks(batch), batch) for batch in range(6)]
        untimed = [{k: v for k, v in row.items() if not k.startswith("time_")} for row in rows]
        return untimed, parameters_to_vector(learner.policy.parameters()).detach()

    rows, final = training(1)
    accepted = {row["ls_step"] for row in rows}
    assert len(accepted) >= 2 and max(accepted) >= 1, accepted  # not only the full step
    for ls_threads, stack_rows in ((2, 0), (3, 0), (2, 10**9), (3, 10**9)):
        other_rows, other_final = training(ls_threads, stack_rows)
        assert other_rows == rows
        assert torch.equal(other_final, final)


@pytest.mark.parametrize("first_order, max_kl, damping", [(True, 1e-1, 0.0), (True, 3e-2, 0.0), (True, 1e-1, 1e-3),
                                                         (True, 1e-2, 1e-3), (False, 1e-1, 0.0), (False, 1e-2, 0.0)])
def test_line_search_step_is_independent_of_the_number_of_threads(data, first_order, max_kl, damping) -> None:
    """The accepted trial (here 8, 7, 5, 4, 3, 2: every place within groups of 2, 3 and 4), its
    values and the new meta-parameters agree bit for bit for 1 to 4 concurrent trials, in
    threads or stacked."""
    train, valid = data
    results = []
    for ls_threads in (1, 2, 3, 4):
        for stack_rows in (0, 10**9):
            learner = tiny_learner(first_order, max_kl=max_kl, cg_damping=damping, ls_threads=ls_threads,
                                   ls_stack_rows=stack_rows)
            log = learner.step(train, valid)
            results.append((log, parameters_to_vector(learner.policy.parameters()).detach()))
    log, final = results[0]
    assert log["ls_accepted"] and log["ls_step"] >= 2
    for other_log, other_final in results[1:]:
        assert other_log == log and torch.equal(other_final, final)


def test_line_search_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ls_threads must be >= 1"):
        tiny_learner(True, ls_threads=0)


@pytest.mark.parametrize("block_size", [4, 64])
def test_inner_gradient_and_adaptation_equal_autograd_bitwise(block_size: int) -> None:
    """The hand-written inner gradient is autograd's gradient of ``inner_loss`` bit for bit on
    sampled AWAKE batches (float32, the default widths), from the replicated meta-parameters
    and after a step; value-only adaptation equals the autograd loop it replaced, and the
    first-order adaptation with a graph has d theta' / d theta = I."""
    learner, sampler, tasks = _awake_round(hidden=64, tasks=4, episodes=8, block_size=block_size)
    train, _ = learner.sample(sampler, tasks(0), 0)
    policy = learner.policy
    meta = policy.meta_parameters()
    params = stack_params(meta, 4)
    expected = params
    for batch in train:
        leaves = fresh_leaves(expected)
        reference = torch.autograd.grad(learner.inner_loss(batch, leaves), list(leaves.values()))
        manual = learner.inner_gradient(batch, expected)
        assert len(learner.steps(batch).task) > 4  # several blocks per task
        for (name, ref), got in zip(zip(leaves, reference), manual.values()):
            assert torch.equal(got, ref), name
        expected = OrderedDict((n, p.detach() - learner.fast_lr * g) for (n, p), g in zip(leaves.items(), reference))
    with torch.no_grad():
        adapted = learner.adapt(train, params=params)
    for name in expected:
        assert torch.equal(adapted[name], expected[name]), name
    with_graph = learner.adapt(train)
    weights = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(7)) for n, p in with_graph.items()}
    grads = torch.autograd.grad(sum((p * weights[n]).sum() for n, p in with_graph.items()), list(meta.values()))
    for (name, p), grad in zip(with_graph.items(), grads):
        assert torch.equal(p.detach(), expected[name])
        torch.testing.assert_close(grad, weights[name].sum(0), rtol=0, atol=1e-6)
