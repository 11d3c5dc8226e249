"""Gaussian MLP policy with a functional forward (parameters passed as a dict).

pi(a | s) = N(mu_theta(s), diag(sigma^2)), mu an MLP, log sigma a learned
state-independent vector (floored at ``min_std``). ``forward(obs, params)`` evaluates the
ordinary ``nn.Module`` with other parameters through ``torch.func.functional_call``, so
an adapted policy is just a dict of tensors (Finn et al. 2017, "Model-Agnostic
Meta-Learning for Fast Adaptation of Deep Networks").
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.distributions import Independent, Normal
from torch.func import functional_call


class _NumpyTanh(torch.autograd.Function):
    """tanh evaluated by NumPy's vectorised kernel, with d tanh(x)/dx = 1 - tanh(x)^2.

    The backward is written with differentiable operations on the saved output, so it can
    be differentiated again (second-order MAML builds the graph of the inner gradient).
    """

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        np.tanh(x.detach().numpy(), out=out.numpy())
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def, override]
        (out,) = ctx.saved_tensors
        return grad * (1.0 - out * out)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x), differentiable to any order.

    torch's float32 tanh kernel (accurate to 0.5 ulp) costs 3-4 ns per element on this
    project's CPUs, NumPy's vectorised one (about 1.4 ulp; measured in ``tests/test_policy.py``)
    about 0.3 ns with AVX-512 (AMD Zen 4) and 2.6 ns with AVX2 only (Zen 3); tanh was the largest
    elementwise cost of sampling and of the losses. Other devices and dtypes use ``torch.tanh``.
    """
    return _NumpyTanh.apply(x) if _numpy_serves(x) else torch.tanh(x)


def _numpy_serves(x: torch.Tensor) -> bool:
    """Whether NumPy can evaluate tanh on ``x``: a CPU tensor of float32 or float64."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _fast_tanh_(x: torch.Tensor) -> torch.Tensor:
    """In-place ``fast_tanh`` of a contiguous CPU tensor outside autograd (sampling)."""
    if not (_numpy_serves(x) and x.is_contiguous()):
        return x.tanh_()
    return _numpy_tanh_(x)


def _numpy_tanh_(x: torch.Tensor) -> torch.Tensor:
    """NumPy's tanh in place on a contiguous CPU float tensor (the caller has checked)."""
    array = x.numpy()
    np.tanh(array, out=array)
    return x


class Tanh(nn.Module):
    """``nn.Tanh`` evaluated with ``fast_tanh`` (no parameters: state dicts are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_tanh(x)


NONLINEARITIES = {"tanh": Tanh, "relu": nn.ReLU, "elu": nn.ELU}
# The same functions as NONLINEARITIES, in place on a fresh tensor (no module call per use).
_IN_PLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": _fast_tanh_,
    "relu": torch.Tensor.relu_,
    "elu": lambda x: nn.functional.elu(x, inplace=True),
}
# Derivative of each nonlinearity expressed through its output h (and input a).
_DERIVATIVES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tanh": lambda a, h: 1.0 - h * h,
    "relu": lambda a, h: (a > 0).to(h.dtype),
    "elu": lambda a, h: torch.where(a > 0, torch.ones_like(h), h + 1.0),
}


# Value of each nonlinearity on a tensor outside autograd (a new tensor; the same values as
# the module's forward).
_VALUES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda x: _NumpyTanh.forward(x) if _numpy_serves(x) else torch.tanh(x),
    "relu": torch.relu,
    "elu": nn.functional.elu,
}
# Autograd's own backward of each nonlinearity (cotangent g, input a, output h): the same
# kernels the engine runs for the module's forward, so hand-written gradients equal
# ``torch.autograd.grad`` bit for bit.
_BACKWARDS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tanh": lambda g, a, h: g * (1.0 - h * h) if _numpy_serves(h) else torch.ops.aten.tanh_backward(g, h),
    "relu": lambda g, a, h: torch.ops.aten.threshold_backward(g, h, 0),
    "elu": lambda g, a, h: torch.ops.aten.elu_backward(g, 1.0, 1, 1, False, a),
}


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class Activations:
    """A value-only forward pass of K stacked policies (``NormalMLPPolicy.stacked_activations``)."""

    hidden: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per hidden layer: pre- and post-activation
    mean: torch.Tensor  # (K, N, act)
    log_std: torch.Tensor  # (K, 1, act), floored


@dataclass(frozen=True)
class _FisherLayer:
    """One linear layer as ``NormalMLPPolicy.fisher_vector_product`` uses it (all fixed for
    the products of one conjugate gradient)."""

    name: str
    rows: torch.Tensor  # the layer's input rows (K N, in)
    rows_t: torch.Tensor  # their transpose (a view)
    weight_t: torch.Tensor  # task weights as (K, in, out) views
    weight: torch.Tensor  # task weights (K, out, in)
    derivative: torch.Tensor | None  # the activation's derivative (K, N, out); None for the output layer
    tangent: torch.Tensor  # buffer (K N, out): the output's tangent, then its cotangent
    stacked: torch.Tensor  # the buffer as (K, N, out)
    tangent_t: torch.Tensor  # the buffer transposed (a view)
    grad_weight: torch.Tensor  # view of the result: the weight's product
    grad_bias: torch.Tensor  # view of the result: the bias's product
    grad_weight_t: torch.Tensor | None  # buffer (in, out) where the transposed weight product is faster


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(a; mu, diag(sigma^2)) summed over the last axis, sigma = exp(log_std).

    log pi(a) = -1/2 sum_j ((a_j - mu_j) / sigma_j)^2 - sum_j log sigma_j - d/2 log(2 pi).
    ``log_std`` broadcasts against ``mean`` (e.g. (K, 1, d) for (K, N, d)); the log-std sum is
    then taken once per policy, not once per step.
    """
    z = (actions - mean) * torch.exp(-log_std)
    return -0.5 * (z * z).sum(-1) - (log_std.sum(-1) + mean.shape[-1] * LOG_SQRT_2PI)


def gaussian_kl(old_mean: torch.Tensor, old_log_std: torch.Tensor, mean: torch.Tensor,
                log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_o, sigma_o^2) || N(mu, sigma^2)) of diagonal Gaussians, summed over the last axis.

    KL = sum_j [log sigma_j - log sigma_o,j + (sigma_o,j^2 + (mu_o,j - mu_j)^2) / (2 sigma_j^2) - 1/2];
    the terms without means are evaluated once per policy when the log-stds broadcast.
    """
    per_policy = (log_std - old_log_std + 0.5 * torch.exp(2 * (old_log_std - log_std)) - 0.5).sum(-1)
    z = (old_mean - mean) * torch.exp(-log_std)
    return 0.5 * (z * z).sum(-1) + per_policy


class NormalMLPPolicy(nn.Module):
    """Diagonal Gaussian policy.

    Parameters
    ----------
    input_size, output_size
        Observation and action dimensions.
    hidden_sizes
        Widths of the hidden layers (default (64, 64)).
    nonlinearity
        ``"tanh"`` (default), ``"relu"`` or ``"elu"``.
    init_std
        Initial standard deviation of every action dimension (default 0.5).
    min_std
        Floor of the standard deviation (default 1e-6).
    """

    def __init__(self, input_size: int, output_size: int, hidden_sizes: Sequence[int] = (64, 64),
                 nonlinearity: str = "tanh", init_std: float = 0.5, min_std: float = 1e-6) -> None:
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        if not 0 < min_std <= init_std:
            raise ValueError(f"need 0 < min_std <= init_std, got {min_std}, {init_std}")
        self.input_size, self.output_size = input_size, output_size
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.nonlinearity = nonlinearity
        self.init_std, self.min_std = float(init_std), float(min_std)
        layers: list[nn.Module] = []
        width = input_size
        for hidden in self.hidden_sizes:
            layers += [nn.Linear(width, hidden), NONLINEARITIES[nonlinearity]()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(width, output_size)
        self.log_std = nn.Parameter(torch.full((output_size,), math.log(init_std)))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def config(self) -> dict:
        """Constructor arguments (stored with checkpoints)."""
        return {"input_size": self.input_size, "output_size": self.output_size,
                "hidden_sizes": list(self.hidden_sizes), "nonlinearity": self.nonlinearity,
                "init_std": self.init_std, "min_std": self.min_std}

    def linear_names(self) -> list[str]:
        """Names of the linear layers, input to output (``body.0``, ..., ``mu``)."""
        return [f"body.{i}" for i, m in enumerate(self.body) if isinstance(m, nn.Linear)] + ["mu"]

    def meta_parameters(self) -> "OrderedDict[str, torch.Tensor]":
        """The module's own parameters as an ordered dict (the meta-parameters)."""
        return OrderedDict(self.named_parameters())

    def forward(self, obs: torch.Tensor,
                params: "OrderedDict[str, torch.Tensor] | None" = None) -> Independent:
        """The action distribution; log-prob and entropy sum over action dimensions.

        ``params`` (a dict with the names of ``named_parameters``) replaces the module's
        parameters for this call; gradients flow into whatever ``params`` was computed from.
        """
        if params is not None:
            return functional_call(self, params, (obs,), strict=True)
        mean = self.mu(self.body(obs))
        std = torch.exp(torch.clamp(self.log_std, min=math.log(self.min_std)))
        return Independent(Normal(mean, std.expand_as(mean), validate_args=False), 1, validate_args=False)

    def stacked_mean_std(self, obs: torch.Tensor,
                         params: "dict[str, torch.Tensor]") -> tuple[torch.Tensor, torch.Tensor]:
        """Means (K, N, act) and standard deviations (K, 1, act) of K policies; see ``forward_stacked``."""
        mean, log_std = self.stacked_mean_log_std(obs, params)
        return mean, torch.exp(log_std)

    def stacked_std(self, params: "dict[str, torch.Tensor]") -> torch.Tensor:
        """Standard deviations (K, 1, act) of K policies: exp(max(log_std, log min_std))."""
        return torch.exp(self.stacked_log_std(params))

    def stacked_log_std(self, params: "dict[str, torch.Tensor]") -> torch.Tensor:
        """Floored log standard deviations (K, 1, act) of K policies: max(log_std, log min_std)."""
        return torch.clamp(params["log_std"], min=math.log(self.min_std)).unsqueeze(1)

    def stacked_mean_log_std(self, obs: torch.Tensor,
                             params: "dict[str, torch.Tensor]") -> tuple[torch.Tensor, torch.Tensor]:
        """Means (K, N, act) and floored log-stds (K, 1, act) of K policies, differentiable in
        ``params``; with ``gaussian_log_prob`` and ``gaussian_kl`` the losses avoid building
        distribution objects with per-step copies of the standard deviation."""
        h = obs
        for index, module in enumerate(self.body):
            if isinstance(module, nn.Linear):
                h = torch.baddbmm(params[f"body.{index}.bias"].unsqueeze(1), h,
                                  params[f"body.{index}.weight"].transpose(1, 2))
            else:
                h = module(h)  # elementwise nonlinearity
        mean = torch.baddbmm(params["mu.bias"].unsqueeze(1), h, params["mu.weight"].transpose(1, 2))
        return mean, self.stacked_log_std(params)

    def stacked_activations(self, obs: torch.Tensor, params: "dict[str, torch.Tensor]") -> "Activations":
        """The values of ``stacked_mean_log_std`` (no graph), with every hidden layer's pre- and
        post-activation: the same operations, so the same values, and what a hand-written
        vector-Jacobian or Fisher-vector product needs from the forward pass."""
        hidden = []
        with torch.no_grad():
            h = obs
            for name in self.linear_names()[:-1]:
                pre = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), h, params[f"{name}.weight"].transpose(1, 2))
                h = _VALUES[self.nonlinearity](pre)
                hidden.append((pre, h))
            mean = torch.baddbmm(params["mu.bias"].unsqueeze(1), h, params["mu.weight"].transpose(1, 2))
            return Activations(hidden=tuple(hidden), mean=mean, log_std=self.stacked_log_std(params))

    def stacked_mean_function(self, params: "dict[str, torch.Tensor]") -> Callable[[torch.Tensor], torch.Tensor]:
        """obs (K, N, input) -> means (K, N, act) of K policies with fixed ``params``, for many small calls.

        The same operations as ``stacked_mean_std`` (bitwise equal results), with the layers'
        views prepared once and the nonlinearity applied in place: sampling calls it once per
        time step. Not differentiable (in-place); use under ``torch.no_grad()``.
        """
        names = self.linear_names()
        # torch's batched product takes another kernel for a batch of one matrix, whose last
        # bits can differ: a lone task is evaluated as a pair, so that a task's actions do not
        # depend on how many tasks a sampler worker holds (see also MKL_CBWR in maml_rl/__init__.py).
        single = params["mu.bias"].shape[0] == 1
        if single:
            params = {name: p.repeat(2, *([1] * (p.dim() - 1))) for name, p in params.items()}
        layers = [(params[f"{name}.bias"].unsqueeze(1), params[f"{name}.weight"].transpose(1, 2)) for name in names]
        hidden, (out_bias, out_weight) = layers[:-1], layers[-1]
        activation = _IN_PLACE[self.nonlinearity]
        if self.nonlinearity == "tanh" and _numpy_serves(out_bias):
            # ``_fast_tanh_``'s checks hold for every call (fresh contiguous products of these
            # CPU parameters): decided once here, a few microseconds less per sampled step.
            activation = _numpy_tanh_

        def mean(obs: torch.Tensor) -> torch.Tensor:
            h = obs.expand(2, *obs.shape[1:]).contiguous() if single else obs
            for bias, weight in hidden:
                h = activation(torch.baddbmm(bias, h, weight))
            out = torch.baddbmm(out_bias, h, out_weight)
            return out[:1] if single else out

        return mean

    def fisher_vector_product(self, obs: torch.Tensor, params: "dict[str, torch.Tensor]", weights: torch.Tensor,
                              forward: "Activations | None" = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """v -> F v for the weighted Fisher information of K policies with shared direction v.

        F = sum_k sum_n w_kn [J_kn^T diag(1/sigma_k^2) J_kn + 2 S_k], with J_kn = d mu_k(s_n) / d p
        evaluated at the task's parameters ``params[.][k]`` and S_k the derivative of the floored
        log-std. This is the exact Hessian of sum_kn w_kn KL(pi_old || pi_p) at p = old, where
        the second derivatives of mu drop out because dKL/dmu = 0 there. The direction v
        (flattened like ``self.parameters()``) moves every task's parameters alike, as a
        meta-parameter step does in first-order MAML.

        The products are written out layer by layer (forward-mode tangent, then reverse
        mode), which avoids autograd's double back-propagation; tested against it.

        Parameters
        ----------
        obs
            (K, N, input_size) observations.
        params
            Task-stacked parameters at which F is evaluated.
        weights
            (K, N) weights w_kn (0 on padding).
        forward
            ``stacked_activations(obs, params)`` if already computed (else computed here).

        Returns
        -------
        Callable
            v -> F v. The returned vector is one buffer that every call overwrites (the
            conjugate gradient consumes each product before the next); copy it to keep it.
        """
        # Everything a product needs is prepared once for all products of the conjugate
        # gradient: per layer its input rows (K N, in) and their transpose, the task weights as
        # (K, in, out) and (K, out, in) views, the activation's derivative (K, N, out) (None for
        # the output layer), a tangent buffer (K N, out) that the reverse pass reuses for the
        # cotangent, and views of the result. A late product is about 20 operations on a few
        # hundred rows, so their number, not their arithmetic, sets its cost.
        k, n = obs.shape[:2]
        order = [name for name, _ in self.named_parameters()]
        shapes = [p.shape for _, p in self.named_parameters()]
        sizes = [shape.numel() for shape in shapes]
        result = torch.empty(sum(sizes), dtype=obs.dtype)
        grads = {name: g.view(shape) for name, g, shape in zip(order, result.split(sizes), shapes)}
        layers: list[_FisherLayer] = []
        forward = self.stacked_activations(obs, params) if forward is None else forward
        inputs = [obs] + [post for _, post in forward.hidden]  # each linear layer's input
        with torch.no_grad():
            for index, name in enumerate(self.linear_names()):
                weight = params[f"{name}.weight"]
                derivative = None
                if name != "mu":
                    derivative = _DERIVATIVES[self.nonlinearity](*forward.hidden[index])
                rows = inputs[index].reshape(k * n, -1)
                tangent = torch.empty(k * n, weight.shape[1], dtype=obs.dtype)
                # fan-out > fan-in (the first layer): the (in, out) product with few rows is
                # several times faster in MKL than the (out, in) one with few columns.
                weight_t_buffer = (torch.empty(weight.shape[2], weight.shape[1], dtype=obs.dtype)
                                   if weight.shape[-2] > weight.shape[-1] else None)
                layers.append(_FisherLayer(
                    name=name, rows=rows, rows_t=rows.T, weight_t=weight.transpose(1, 2), weight=weight,
                    derivative=derivative, tangent=tangent, stacked=tangent.view(k, n, -1), tangent_t=tangent.T,
                    grad_weight=grads[f"{name}.weight"], grad_bias=grads[f"{name}.bias"],
                    grad_weight_t=weight_t_buffer))
            log_std = params["log_std"]
            scale = weights.unsqueeze(-1) / torch.exp(2 * torch.clamp(log_std, min=math.log(self.min_std))).unsqueeze(1)
            std_active = (log_std > math.log(self.min_std)).to(obs.dtype)  # clamp derivative
            std_weight = (2.0 * weights.sum(1, keepdim=True) * std_active).sum(0)  # (act,)
        parts: dict[str, torch.Tensor] = {}
        last: list[torch.Tensor] = []  # the vector ``parts`` views (the conjugate gradient reuses one)

        def product(vector: torch.Tensor) -> torch.Tensor:
            if not (last and last[0] is vector):
                views = {name: v.view(shape) for name, v, shape in zip(order, vector.split(sizes), shapes)}
                parts.clear()
                parts.update({name: views[f"{name}.weight"].T for name in self.linear_names()})
                parts.update({name: views[name] for name in order if not name.endswith(".weight")})
                last[:] = [vector]
            # Forward mode: tangent of each layer's output along v.
            previous = None
            for layer in layers:
                torch.addmm(parts[f"{layer.name}.bias"], layer.rows, parts[layer.name], out=layer.tangent)
                if previous is not None:
                    layer.stacked.baddbmm_(previous.stacked, layer.weight_t)
                if layer.derivative is not None:
                    layer.stacked.mul_(layer.derivative)
                previous = layer
            cotangent = previous.stacked.mul_(scale)
            # Reverse mode: J^T (scaled J v), summed over tasks and steps, written into ``result``;
            # each layer's tangent buffer then holds the cotangent of its output.
            for index in range(len(layers) - 1, -1, -1):
                layer = layers[index]
                if layer.grad_weight_t is not None:
                    torch.mm(layer.rows_t, layer.tangent, out=layer.grad_weight_t)
                    layer.grad_weight.copy_(layer.grad_weight_t.T)
                else:
                    torch.mm(layer.tangent_t, layer.rows, out=layer.grad_weight)
                torch.sum(layer.tangent, 0, out=layer.grad_bias)
                if index > 0:
                    below = layers[index - 1]
                    torch.bmm(cotangent, layer.weight, out=below.stacked)
                    cotangent = below.stacked.mul_(below.derivative)
            torch.mul(std_weight, parts["log_std"], out=grads["log_std"])
            return result

        return product

    def stacked_log_prob_vjp(self, obs: torch.Tensor, actions: torch.Tensor, cotangent: torch.Tensor,
                             params: "dict[str, torch.Tensor]",
                             forward: "Activations | None" = None) -> "OrderedDict[str, torch.Tensor]":
        """Gradients of sum_kn c_kn log pi_k(a_kn | s_kn) with respect to K policies' parameters.

        The vector-Jacobian product of ``gaussian_log_prob(actions, *stacked_mean_log_std(obs,
        params))`` with the cotangent c, written out without building a graph. With
        z = (a - mu) / sigma and log pi = -1/2 |z|^2 - sum_j log sigma_j - d/2 log(2 pi):
        d log pi / d mu = z / sigma and d log pi / d log sigma_j = z_j^2 - 1; the means are then
        back-propagated layer by layer (dW = delta^T h_in, db = sum_n delta, delta_in =
        (delta W) * f'(a)). Every operation is the one autograd's backward runs for that
        forward, in the same order and memory layout, so the result equals
        ``torch.autograd.grad`` bit for bit (tested); it costs about half as much, because the
        forward keeps no graph and no gradient of a weight is copied out of a transposed view.
        Values only: the result is not differentiable.

        Parameters
        ----------
        obs, actions
            (K, N, input_size) and (K, N, output_size).
        cotangent
            (K, N) coefficients c_kn (0 on padding).
        params
            Task-stacked parameters (K, *shape).
        forward
            ``stacked_activations(obs, params)`` if already computed (else computed here).

        Returns
        -------
        OrderedDict
            (K, *shape) gradients, named and ordered like ``params``.
        """
        names = self.linear_names()
        floor = math.log(self.min_std)
        forward = self.stacked_activations(obs, params) if forward is None else forward
        outputs, mean = forward.hidden, forward.mean  # each hidden layer's (pre, post) activation
        inputs = [obs] + [post for _, post in outputs]  # each linear layer's input
        with torch.no_grad():
            raw_log_std = params["log_std"]
            log_std = torch.clamp(raw_log_std, min=floor).unsqueeze(1)
            diff = actions - mean
            inv_std = torch.exp(-log_std)
            z = diff * inv_std
            # log pi = -0.5 * sum_j z_j^2 - (sum_j log sigma_j + const)
            half = (cotangent * -0.5).unsqueeze(-1) * z
            grad_z = half + half  # d(z*z): the engine adds the two equal products of the mul
            grad_mean = -(grad_z * inv_std)
            grad_log_std = (-((grad_z * diff).sum(1, keepdim=True) * inv_std)
                            + (-cotangent).sum(1, keepdim=True).unsqueeze(-1))
            grads = {"log_std": torch.where(raw_log_std >= floor, grad_log_std.squeeze(1),
                                            torch.zeros((), dtype=grad_log_std.dtype))}
            delta = grad_mean
            for index in range(len(names) - 1, -1, -1):
                name = names[index]
                grads[f"{name}.bias"] = delta.sum(1, keepdim=True).squeeze(1)
                # autograd's (in, out) product, left transposed: ``task_sums`` of blocks and
                # ``contiguous`` here copy it; see ``maml_rl.utils.blocks.StepBlocks.task_sums``.
                grads[f"{name}.weight"] = inputs[index].transpose(1, 2).bmm(delta).transpose(1, 2)
                if index > 0:
                    pre, post = outputs[index - 1]
                    delta = _BACKWARDS[self.nonlinearity](delta.bmm(params[f"{name}.weight"]), pre, post)
        return OrderedDict((name, grads[name]) for name in params)

    def forward_stacked(self, obs: torch.Tensor, params: "dict[str, torch.Tensor]") -> Independent:
        """Distributions of K policies at once (one set of parameters per task).

        Parameters
        ----------
        obs
            (K, N, input_size) observations, row block k for policy k.
        params
            Parameters stacked along a leading task axis: ``params[name]`` has shape
            (K, *shape of name). Differentiable with respect to ``params``.

        Notes
        -----
        Equivalent to ``forward(obs[k], {n: p[k]})`` for every k (tested), but one batched
        matrix product per layer instead of K ``functional_call``s; the samplers and
        the task-batched losses use it.
        """
        mean, std = self.stacked_mean_std(obs, params)
        return Independent(Normal(mean, std.expand_as(mean), validate_args=False), 1, validate_args=False)

    def update_params(self, loss: torch.Tensor, params: "OrderedDict[str, torch.Tensor] | None" = None,
                      step_size: float = 0.5, first_order: bool = False) -> "OrderedDict[str, torch.Tensor]":
        """One gradient step theta' = theta - step_size * grad(loss).

        With ``first_order=False`` the graph of the gradient is kept (``create_graph=True``),
        so that theta' is differentiable with respect to theta through the Hessian. Works
        equally on task-stacked parameters when ``loss`` is the sum of per-task losses
        (each task's slice then receives its own task's gradient).
        """
        params = self.meta_parameters() if params is None else params
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        return OrderedDict((name, p - step_size * g) for (name, p), g in zip(params.items(), grads))
