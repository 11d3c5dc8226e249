"""NAF: continuous Q-learning with a normalised advantage function, and PER-NAF.

Gu, Lillicrap, Sutskever & Levine 2016, "Continuous Deep Q-Learning with Model-based
Acceleration" (ICML). The Q-function is restricted to a form whose maximum over actions is
known in closed form:

    Q(s, a) = V(s) + A(s, a),
    A(s, a) = -1/2 (a - mu(s))^T P(s) (a - mu(s)),      P(s) = L(s) L(s)^T,

with L lower triangular with a positive diagonal, so P is symmetric positive definite,
A <= 0 with equality only at a = mu(s), and argmax_a Q(s, a) = mu(s), max_a Q(s, a) = V(s).
One network (shared trunk, three heads) gives V, mu (squashed into the action Box with
tanh) and the entries of L (diagonal through softplus plus a floor). It is trained by
regression on the TD target of a slowly moving (Polyak-averaged) target network,

    y = r + gamma (1 - terminated) V_target(s'),

where only a terminal state of the MDP (success or beam loss on AWAKE) stops the
bootstrap; a time-limit truncation does not. With ``double_q`` two such networks are
trained on the same targets and the target is the smaller of their target networks'
values, min_k V_target_k(s') (clipped double Q, as NAF2 in Hirlaender & Bruchon 2020 and
TD3), which counters the overestimation of a max over noisy estimates.

NAF was the first RL algorithm used online at the AWAKE electron line (Kain et al. 2020,
"Sample-efficient reinforcement learning for CERN accelerator control", PRAB 23, 124801);
PER-NAF is NAF with proportional prioritised replay (Schaul et al. 2016, see
``maml_rl.baselines.replay``) and the importance-weighted loss
1/2 mean_i w_i (Q(s_i, a_i) - y_i)^2.

Exploration: Gaussian noise on mu(s) (in units of the Box's half-width) whose standard
deviation decays linearly or exponentially from ``noise_start`` to ``noise_end`` over
``noise_decay_steps`` environment steps; actions are clipped to the Box. Updates start
after ``learning_starts`` steps. Rewards enter the TD target multiplied by
``reward_scale`` (Q is learnt in scaled units; the greedy policy is unchanged).
"""

from __future__ import annotations

import copy
import io
import json
import math
import pickle
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from maml_rl.baselines.replay import Batch, PrioritizedReplayBuffer, ReplayBuffer, annealed_beta
from maml_rl.runio import atomic_write_bytes

MODEL_FORMAT = "maml-rl-awake/naf-v1"
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
NOISE_SCHEDULES = ("linear", "exponential")


class NAFModelError(ValueError):
    """A NAF model file is missing, was not written by :meth:`NAF.save`, or does not fit the
    environment."""


@dataclass
class NAFConfig:
    """Hyper-parameters of NAF / PER-NAF.

    Defaults are for AWAKE steering (10 monitors, 10 correctors, episodes of a few steps,
    reward -10 rms per step, beam-loss penalty 200 in the evaluation config). The field's
    NAF agents for AWAKE use small tanh networks, Adam at 1e-3, soft target updates, small
    batches, double Q and Gaussian exploration noise decaying to (almost) zero: the PER-NAF
    code behind Kain et al. 2020 (github.com/MathPhysSim/PER-NAF: 2 x 100 tanh, discount
    0.999, batch 10, 3 updates per step, Polyak 0.999, noise decaying linearly to 0) and the
    CERN RL-for-accelerators tutorial settings (2 x 32, gamma 0.99, tau 0.005, batch 50-100).
    The values here follow them where they agree and were checked on the nominal task
    (gamma and tau deviate from the tutorials', for measured reasons given below); the
    learning curves are in ``docs/naf.md``.
    """

    hidden_sizes: tuple[int, ...] = (32, 32)
    """Widths of the shared hidden layers: the steering map is linear in the kicks, so a
    small network suffices (2 x 32 as in the field's AWAKE configs) and trains fast."""
    activation: str = "tanh"
    """Hidden nonlinearity (tanh, relu or elu); tanh as in the AWAKE NAF agents."""
    learning_rate: float = 1e-3
    """Adam step size (1e-3, the field's value for NAF on AWAKE)."""
    batch_size: int = 64
    """Transitions per gradient step (50-100 in the field's configs)."""
    gamma: float = 0.9
    """Discount. A good episode lasts 2-4 steps, so 0.9 still ranks policies by speed, and
    any bias of the bootstrapped V(s') is amplified at most 1 / (1 - gamma) = 10 times.
    The field's 0.99 amplifies 100 times: on the nominal task NAF's V at the initial
    states then exceeded the greedy policy's actual (scaled) return by 5-8, against about
    1 at 0.9, and the greedy policy stalled (see ``docs/naf.md``)."""
    reward_scale: float = 0.1
    """Rewards are multiplied by this in the TD target (Q is learnt in scaled units). AWAKE's
    rewards (-10 rms per step, -200 on beam loss) put Q in [-250, 0]; at 0.1 the values are
    O(1-20), which a small network with default initialisation and Adam at 1e-3 fits within
    the budget (at 1.0 the greedy policy did not improve in 5000 steps)."""
    tau: float = 0.001
    """Polyak coefficient of the soft target update theta' <- tau theta + (1 - tau) theta'
    (0.001 as in the PER-NAF code, Polyak 0.999; the tutorials' 0.005 gave a less stable
    greedy policy on the nominal task)."""
    buffer_size: int = 100_000
    """Replay capacity: larger than any budget used here, so nothing is forgotten."""
    learning_starts: int = 100
    """Environment steps before the first update (a few episodes, beam losses included,
    so the first batches are not all from one episode)."""
    uniform_warmup: bool = False
    """Act uniformly at random before learning_starts (SB3's habit) instead of noisy mu.
    Off for NAF: with no data near mu, V(s) = Q(s, mu(s)) is pure extrapolation, and on
    AWAKE it came out positive (all rewards are negative) and fed overestimated targets."""
    gradient_steps: int = 1
    """Gradient steps per environment step (the PER-NAF code uses 3; 2 was not better on
    the nominal task and costs twice the time)."""
    double_q: bool = True
    """Two Q networks, TD target from the minimum of their target values (NAF2)."""
    noise_start: float = 0.5
    """Initial exploration noise std (units of the Box's half-width): a step of ~0.5 per
    corrector moves the orbit visibly without losing the beam at every step."""
    noise_end: float = 0.02
    """Floor of the exploration noise std (near-greedy once Q is fitted, as in the field's
    schedules that decay to 0; a floor keeps the buffer from collapsing onto mu)."""
    noise_decay_steps: int = 2000
    """Environment steps over which the noise std goes from noise_start to noise_end
    (about 50-100 early AWAKE episodes)."""
    noise_schedule: str = "linear"
    """``linear`` or ``exponential`` (geometric) decay of the noise std."""
    diag_floor: float = 1e-4
    """Added to softplus of L's diagonal: keeps P = L L^T positive definite."""
    init_diag: float = 0.1
    """Initial diagonal of L (P starts near init_diag^2 I): a nearly flat initial
    advantage, so that V first fits the returns instead of being inflated by a large,
    arbitrary -A at the noisy actions."""
    max_grad_norm: float | None = 10.0
    """Gradient-norm clip (None: no clipping); a guard against the large TD errors of
    beam-loss transitions, rarely active at the default reward scale."""
    per_alpha: float = 0.6
    """PER priority exponent (Schaul et al. 2016's value for the proportional variant)."""
    per_beta0: float = 0.4
    """PER initial importance-sampling exponent, annealed linearly to 1."""
    per_beta_steps: int = 5000
    """Environment steps over which beta reaches 1 (half the 10,000-step budget of the
    comparison: the bias correction is complete while the policy converges)."""
    per_eps: float = 1e-6
    """Added to |TD error| so that every transition keeps a non-zero priority."""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        positive = {"learning_rate": self.learning_rate, "batch_size": self.batch_size,
                    "buffer_size": self.buffer_size, "gradient_steps": self.gradient_steps,
                    "diag_floor": self.diag_floor, "init_diag": self.init_diag, "per_eps": self.per_eps,
                    "reward_scale": self.reward_scale}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be non-empty positive widths, got {self.hidden_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma!r}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must lie in (0, 1], got {self.tau!r}")
        if self.learning_starts < 0 or self.noise_decay_steps < 0 or self.per_beta_steps < 0:
            raise ValueError("learning_starts, noise_decay_steps and per_beta_steps must be >= 0")
        if self.noise_schedule not in NOISE_SCHEDULES:
            raise ValueError(f"noise_schedule must be one of {NOISE_SCHEDULES}, got {self.noise_schedule!r}")
        if self.noise_start < 0 or self.noise_end < 0:
            raise ValueError("noise_start and noise_end must be >= 0")
        if self.noise_schedule == "exponential" and (self.noise_start <= 0 or self.noise_end <= 0):
            raise ValueError("an exponential noise schedule needs noise_start > 0 and noise_end > 0")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}")
        if self.per_alpha < 0 or not 0 <= self.per_beta0 <= 1:
            raise ValueError("per_alpha must be >= 0 and per_beta0 in [0, 1]")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NAFConfig":
        """Build from a plain dict (e.g. JSON); unknown keys are rejected."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown NAF settings: {', '.join(unknown)}")
        return cls(**data)

    def noise_std(self, step: int) -> float:
        """Exploration noise std after ``step`` environment steps.

        linear:       sigma(t) = s0 + (s1 - s0) min(1, t / T)
        exponential:  sigma(t) = s0 (s1 / s0)^min(1, t / T)
        """
        frac = 1.0 if self.noise_decay_steps == 0 else min(1.0, step / self.noise_decay_steps)
        if self.noise_schedule == "linear":
            return self.noise_start + (self.noise_end - self.noise_start) * frac
        return self.noise_start * (self.noise_end / self.noise_start) ** frac


# ------------------------------------------------------------------------------ the network

class NAFOutput(NamedTuple):
    """Heads of a NAF network for a batch of states."""

    value: torch.Tensor  # V(s), (B,)
    mu: torch.Tensor     # argmax_a Q(s, a), (B, d), inside the Box
    chol: torch.Tensor   # L(s), (B, d, d), lower triangular, positive diagonal


def advantage(mu: torch.Tensor, chol: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """A(s, a) = -1/2 (a - mu)^T L L^T (a - mu) = -1/2 ||L^T (a - mu)||^2 (never positive)."""
    z = torch.einsum("bji,bj->bi", chol, actions - mu)  # L^T (a - mu)
    return -0.5 * (z * z).sum(-1)


class NAFNetwork(nn.Module):
    """Q(s, a) = V(s) - 1/2 (a - mu(s))^T L(s) L(s)^T (a - mu(s)) from one MLP trunk.

    Parameters
    ----------
    obs_dim, action_dim
        Sizes of the observation and action vectors.
    hidden_sizes, activation
        The trunk.
    action_low, action_high
        The action Box; mu = low + (high - low) (tanh(x) + 1) / 2 lies inside it.
    diag_floor
        diag(L) = softplus(x) + diag_floor > 0, so P = L L^T is positive definite.
    init_diag
        diag(L) at initialisation (off-diagonal entries start near 0).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: tuple[int, ...], activation: str,
                 action_low: np.ndarray, action_high: np.ndarray, diag_floor: float,
                 init_diag: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.value_head = nn.Linear(width, 1)
        self.mu_head = nn.Linear(width, action_dim)
        self.diag_head = nn.Linear(width, action_dim)
        self.offdiag_head = nn.Linear(width, action_dim * (action_dim - 1) // 2)
        self.action_dim = action_dim
        self.diag_floor = diag_floor
        rows, cols = torch.tril_indices(action_dim, action_dim, offset=-1)
        # Start with a nearly flat advantage (L ~ init_diag I): with a large initial P the
        # regression explains the targets by a large V minus a large A, and V (the
        # bootstrap value) starts out overestimated.
        with torch.no_grad():
            for head in (self.diag_head, self.offdiag_head):
                head.weight.mul_(0.1)
                head.bias.zero_()
            self.diag_head.bias.fill_(math.log(math.expm1(max(init_diag - diag_floor, 1e-6))))
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32), persistent=False)
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32), persistent=False)

    def forward(self, obs: torch.Tensor) -> NAFOutput:
        h = self.trunk(obs)
        value = self.value_head(h).squeeze(-1)
        mu = self.action_low + (self.action_high - self.action_low) * (torch.tanh(self.mu_head(h)) + 1) / 2
        chol = torch.zeros(obs.shape[0], self.action_dim, self.action_dim, dtype=h.dtype, device=h.device)
        chol[:, self.tril_rows, self.tril_cols] = self.offdiag_head(h)
        chol = chol + torch.diag_embed(F.softplus(self.diag_head(h)) + self.diag_floor)
        return NAFOutput(value, mu, chol)

    def q_value(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q(s, a), (B,)."""
        out = self(obs)
        return out.value + advantage(out.mu, out.chol, actions)

    def precision(self, obs: torch.Tensor) -> torch.Tensor:
        """P(s) = L(s) L(s)^T, (B, d, d), exactly symmetric."""
        chol = self(obs).chol
        product = chol @ chol.transpose(-1, -2)
        # A batched matmul need not round (i, j) and (j, i) alike; the mean of the two is symmetric bitwise.
        return 0.5 * (product + product.transpose(-1, -2))


def td_targets(rewards: torch.Tensor, terminated: torch.Tensor, next_values: torch.Tensor,
               gamma: float) -> torch.Tensor:
    """y = r + gamma (1 - terminated) V'(s'): a truncated (not terminated) step bootstraps."""
    return rewards + gamma * (1.0 - terminated) * next_values


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging theta' <- tau theta + (1 - tau) theta' of every parameter."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.mul_(1.0 - tau).add_(s, alpha=tau)


# ------------------------------------------------------------------------------ the agent

def _box(space: gym.Space, what: str) -> gym.spaces.Box:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"NAF needs a flat Box {what} space, got {space}")
    if what == "action" and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError("NAF needs a bounded action Box")
    return space


class NAF:
    """NAF / PER-NAF agent with the face of an SB3 model.

    Parameters
    ----------
    env
        A gymnasium environment with flat Box observation and (bounded) action spaces.
    config
        Hyper-parameters (default :class:`NAFConfig`).
    seed
        Fixes the network initialisation (torch, without touching the global generator),
        exploration noise, random warm-up actions and replay sampling (one numpy
        Generator) and the environment (``env.reset(seed=seed)`` on the first reset only).
    prioritized
        Proportional prioritised replay (PER-NAF) instead of uniform replay.

    Attributes
    ----------
    num_timesteps
        Environment steps taken.
    episode_count
        Episodes finished (terminated or truncated).
    num_updates
        Gradient steps taken.
    """

    def __init__(self, env: gym.Env, config: NAFConfig | None = None, seed: int = 0,
                 prioritized: bool = False) -> None:
        self.env = env
        self.config = config if config is not None else NAFConfig()
        self.seed = int(seed)
        self.prioritized = bool(prioritized)
        obs_space, act_space = _box(env.observation_space, "observation"), _box(env.action_space, "action")
        self.obs_dim, self.action_dim = obs_space.shape[0], act_space.shape[0]
        self.action_low = act_space.low.astype(np.float32)
        self.action_high = act_space.high.astype(np.float32)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.critics = nn.ModuleList([
                NAFNetwork(self.obs_dim, self.action_dim, cfg.hidden_sizes, cfg.activation,
                           self.action_low, self.action_high, cfg.diag_floor, cfg.init_diag)
                for _ in range(2 if cfg.double_q else 1)])
        self.targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.critics.parameters(), lr=cfg.learning_rate)
        self.buffer: ReplayBuffer
        if self.prioritized:
            self.buffer = PrioritizedReplayBuffer(cfg.buffer_size, self.obs_dim, self.action_dim,
                                                  alpha=cfg.per_alpha, eps=cfg.per_eps)
        else:
            self.buffer = ReplayBuffer(cfg.buffer_size, self.obs_dim, self.action_dim)
        self.rng = np.random.default_rng(self.seed)
        self.num_timesteps = 0
        self.episode_count = 0
        self.num_updates = 0
        self._obs: np.ndarray | None = None
        self._env_seeded = False

    # -------------------------------------------------------------------- acting
    def _noisy(self, mu: np.ndarray, std: float) -> np.ndarray:
        half_width = (self.action_high - self.action_low) / 2
        noisy = mu + std * half_width * self.rng.standard_normal(mu.shape)
        return np.clip(noisy, self.action_low, self.action_high).astype(np.float32)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        """Actions for one observation (d,) or a batch (B, d), like SB3's ``predict``.

        Deterministic: mu(s), the greedy action of the first Q network. Otherwise mu(s) plus
        the current exploration noise, clipped to the Box.
        """
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        batch = obs.reshape(-1, self.obs_dim)
        with torch.inference_mode():
            mu = self.critics[0](torch.from_numpy(batch)).mu.numpy()
        actions = mu if deterministic else self._noisy(mu, self.config.noise_std(self.num_timesteps))
        actions = actions.astype(np.float32)
        return (actions[0] if single else actions), None

    def _act(self, obs: np.ndarray) -> np.ndarray:
        if self.config.uniform_warmup and self.num_timesteps < self.config.learning_starts:
            return self.rng.uniform(self.action_low, self.action_high).astype(np.float32)
        return self.predict(obs, deterministic=False)[0]

    def _env_step(self) -> None:
        if self._obs is None:
            obs, _ = self.env.reset(seed=None if self._env_seeded else self.seed)
            self._env_seeded = True
            self._obs = np.asarray(obs, dtype=np.float32)
        action = self._act(self._obs)
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        next_obs = np.asarray(next_obs, dtype=np.float32)
        # Only `terminated` is stored: a truncated step is bootstrapped from next_obs.
        self.buffer.add(self._obs, action, float(reward), next_obs, bool(terminated))
        self.num_timesteps += 1
        if terminated or truncated:
            self.episode_count += 1
            self._obs = None
        else:
            self._obs = next_obs

    # -------------------------------------------------------------------- learning
    @torch.no_grad()
    def target_values(self, next_obs: torch.Tensor) -> torch.Tensor:
        """V_target(s'), the minimum over the target networks with double Q."""
        values = torch.stack([t(next_obs).value for t in self.targets])
        return values.min(0).values

    def td_targets(self, batch: Batch) -> torch.Tensor:
        """y = reward_scale r + gamma (1 - terminated) V_target(s') for ``batch``."""
        return td_targets(self.config.reward_scale * torch.from_numpy(batch.rewards),
                          torch.from_numpy(batch.terminated),
                          self.target_values(torch.from_numpy(batch.next_obs)), self.config.gamma)

    def beta(self) -> float:
        """Current importance-sampling exponent of PER."""
        return annealed_beta(self.config.per_beta0, self.config.per_beta_steps, self.num_timesteps)

    def update_on_batch(self, batch: Batch) -> dict[str, float]:
        """One gradient step of every Q network on ``batch``, the soft target update and, for
        PER, the new priorities |delta| + eps (delta averaged over the Q networks).

        Loss: sum_k 1/2 mean_i w_i (Q_k(s_i, a_i) - y_i)^2 with y from :meth:`target_values`.
        """
        cfg = self.config
        obs, actions = torch.from_numpy(batch.obs), torch.from_numpy(batch.actions)
        weights = torch.from_numpy(batch.weights)
        y = self.td_targets(batch)
        td = torch.stack([critic.q_value(obs, actions) - y for critic in self.critics])  # (K, B)
        loss = (0.5 * weights * td.pow(2)).mean(-1).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.critics.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        for target, critic in zip(self.targets, self.critics):
            soft_update(target, critic, cfg.tau)
        abs_td = td.detach().abs().mean(0).numpy()
        if isinstance(self.buffer, PrioritizedReplayBuffer):
            self.buffer.update_priorities(batch.indices, abs_td)
        self.num_updates += 1
        return {"loss": float(loss.detach()), "abs_td": float(abs_td.mean())}

    def train_step(self) -> dict[str, float]:
        """Sample a batch (with the current beta for PER) and :meth:`update_on_batch`."""
        return self.update_on_batch(self.buffer.sample(self.config.batch_size, self.rng, self.beta()))

    def learn(self, total_timesteps: int, callback: Callable[["NAF", int], bool] | None = None,
              eval_every: int | None = None) -> "NAF":
        """Take ``total_timesteps`` more environment steps, each followed by
        ``gradient_steps`` updates once ``learning_starts`` steps were taken and the buffer
        holds a batch.

        ``callback(agent, num_timesteps)`` runs after every ``eval_every`` environment steps
        (every step if None), after that step's updates; a falsy return stops training.
        """
        if total_timesteps < 0:
            raise ValueError(f"total_timesteps must be >= 0, got {total_timesteps}")
        if eval_every is not None and eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {eval_every}")
        every = eval_every or 1
        cfg = self.config
        for _ in range(total_timesteps):
            self._env_step()
            if self.num_timesteps > cfg.learning_starts and len(self.buffer) >= cfg.batch_size:
                for _ in range(cfg.gradient_steps):
                    self.train_step()
            if callback is not None and self.num_timesteps % every == 0:
                if not callback(self, self.num_timesteps):
                    break
        return self

    # -------------------------------------------------------------------- files
    def _settings(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "prioritized": self.prioritized, "seed": self.seed,
                "obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "action_low": self.action_low.tolist(), "action_high": self.action_high.tolist(),
                "num_timesteps": self.num_timesteps, "episode_count": self.episode_count,
                "num_updates": self.num_updates}

    def save(self, path: Path) -> None:
        """Write the Q networks and their targets (plain tensors) and the settings (a JSON
        string) to one torch file, atomically. The replay buffer and Adam's moments are not
        saved: a loaded agent acts exactly as the saved one but restarts its replay."""
        tensors = {f"{name}.{key}": value.detach().clone().contiguous()
                   for name, modules in (("critics", self.critics), ("targets", self.targets))
                   for key, value in modules.state_dict().items()}
        data = {"format": MODEL_FORMAT, "settings": json.dumps(self._settings()), "tensors": tensors}
        buffer = io.BytesIO()
        torch.save(data, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: Path, env: gym.Env) -> "NAF":
        """Read a file written by :meth:`save` for ``env`` (same spaces).

        Only ``torch.load(weights_only=True)`` (no code runs) and ``json.loads`` are used.

        Raises
        ------
        NAFModelError
            Missing, unreadable or foreign file, or spaces that do not match ``env``.
        """
        path = Path(path)
        if not path.is_file():
            raise NAFModelError(f"NAF model file not found: {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError,
                AttributeError, TypeError) as exc:
            raise NAFModelError(f"{path} is not a readable NAF model file ({exc.__class__.__name__})") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise NAFModelError(f"{path} was not written by NAF.save (format {MODEL_FORMAT})")
        try:
            settings = json.loads(data["settings"])
            config = NAFConfig.from_dict(settings["config"])
            tensors = data["tensors"]
            agent = cls(env, config, seed=int(settings["seed"]), prioritized=bool(settings["prioritized"]))
            if (agent.obs_dim, agent.action_dim) != (settings["obs_dim"], settings["action_dim"]) or not (
                    np.allclose(agent.action_low, settings["action_low"])
                    and np.allclose(agent.action_high, settings["action_high"])):
                raise NAFModelError(f"{path} was trained on other observation/action spaces than this environment")
            for name, modules in (("critics", agent.critics), ("targets", agent.targets)):
                prefix = f"{name}."
                modules.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            agent.num_timesteps = int(settings["num_timesteps"])
            agent.episode_count = int(settings["episode_count"])
            agent.num_updates = int(settings["num_updates"])
        except NAFModelError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise NAFModelError(f"incompatible NAF model file {path}: {first_line}") from None
        return agent


def naf_controller(agent: NAF) -> Callable[[np.ndarray], np.ndarray]:
    """Deterministic controller (obs batch -> action batch) for ``maml_rl.evaluation``."""
    return lambda obs: agent.predict(np.asarray(obs, dtype=np.float32), deterministic=True)[0]


__all__ = ["NAF", "NAFConfig", "NAFModelError", "NAFNetwork", "NAFOutput", "advantage", "naf_controller",
           "soft_update", "td_targets", "MODEL_FORMAT"]
