"""TD3, SAC and DDPG from stable-baselines3 on one AWAKE task: settings, building, training.

The hyper-parameters are written out in one dataclass per algorithm so that a saved model
can be rebuilt from JSON (``maml_rl.agents``) and every value is visible. The defaults are
SB3's / the original papers' where those suit a 10-dimensional steering task with episodes
of a few steps and budgets of about 10^4 steps, and deviate where they were made for
MuJoCo-sized problems of 10^6 steps (buffer, warm-up, network width); each field says why.
They were not tuned on AWAKE here.

* TD3: Fujimoto, van Hoof & Meger 2018, "Addressing Function Approximation Error in
  Actor-Critic Methods" (clipped double Q, delayed actor updates, target smoothing).
* SAC: Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (entropy
  regularised, automatic temperature with target entropy -dim(A)).
* DDPG: Lillicrap et al. 2016, "Continuous control with deep reinforcement learning"
  (SB3's DDPG is TD3 with one critic, no delay and no target smoothing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from maml_rl.config import Config
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.tasks import Task
from maml_rl.ppo_baseline import Hook, silent_logger, update_callback

OFF_POLICY_ALGOS = ("td3", "sac", "ddpg")
ACTIVATIONS = ("relu", "tanh")


@dataclass(frozen=True)
class OffPolicySettings:
    """What TD3, SAC and DDPG share."""

    learning_rate: float = 1e-3
    """Adam step size of actor and critics (SB3's TD3/DDPG default, the TD3 paper's)."""
    buffer_size: int = 100_000
    """Replay capacity: more than any budget used on AWAKE (SB3's 10^6 is for 10^6-step
    MuJoCo runs and only costs memory here)."""
    learning_starts: int = 500
    """Steps of uniformly random actions before the first update (SB3: 100, zoo: 10^4 for
    10^6-step budgets). 500 is 5 % of a 10,000-step budget: a few dozen AWAKE episodes,
    beam losses included, so the first batches are not dominated by one episode."""
    batch_size: int = 256
    """Transitions per gradient step (SB3's default)."""
    tau: float = 0.005
    """Polyak coefficient of the target networks (SB3's default, the TD3 paper's)."""
    gamma: float = 0.99
    """Discount (SB3's default; see ``docs/naf.md`` for why NAF uses 0.9)."""
    train_freq: int = 1
    """Environment steps between updates (SB3's default: update after every step)."""
    gradient_steps: int = 1
    """Gradient steps per update (SB3's default)."""
    net_arch_pi: tuple[int, ...] = (64, 64)
    """Actor hidden layers. The steering response is linear in the kicks, so a small
    network suffices (the field's AWAKE agents use 2 x 32 to 2 x 100; PPO here 2 x 64);
    SB3's 400-300 / 256-256 are for locomotion."""
    net_arch_qf: tuple[int, ...] = (64, 64)
    """Critic hidden layers (as the actor's)."""
    activation: str = "relu"
    """Hidden nonlinearity (SB3's default for its off-policy algorithms)."""

    def __post_init__(self) -> None:
        for name in ("buffer_size", "batch_size", "train_freq", "gradient_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.learning_starts, bool) or not isinstance(self.learning_starts, int) \
                or self.learning_starts < 0:
            raise ValueError(f"learning_starts must be an integer >= 0, got {self.learning_starts!r}")
        for name in ("learning_rate", "tau", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must lie in (0, 1], got {self.tau!r}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma!r}")
        for name in ("net_arch_pi", "net_arch_qf"):
            layers = getattr(self, name)
            if not isinstance(layers, tuple) or not layers or not all(
                    isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in layers):
                raise ValueError(f"{name} must be positive layer widths, got {layers!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    def algorithm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the SB3 constructor (everything but the architecture)."""
        return {k: v for k, v in asdict(self).items() if k not in ("net_arch_pi", "net_arch_qf", "activation")}


def _check_noise(std: float) -> None:
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not (math.isfinite(std) and std >= 0):
        raise ValueError(f"action_noise_std must be a finite number >= 0, got {std!r}")


@dataclass(frozen=True)
class TD3Settings(OffPolicySettings):
    """TD3: the shared settings plus exploration and the TD3 tricks (the paper's values)."""

    action_noise_std: float = 0.1
    """Std of the Gaussian exploration noise, in units of the action Box's half-width
    (SB3 adds it to the scaled action in [-1, 1]); 0.1 as in the TD3 paper and the zoo."""
    policy_delay: int = 2
    """Critic updates per actor update (the paper's 2)."""
    target_policy_noise: float = 0.2
    """Std of the target-policy smoothing noise (the paper's 0.2)."""
    target_noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise (the paper's 0.5)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_noise(self.action_noise_std)
        if isinstance(self.policy_delay, bool) or not isinstance(self.policy_delay, int) or self.policy_delay < 1:
            raise ValueError(f"policy_delay must be a positive integer, got {self.policy_delay!r}")
        for name in ("target_policy_noise", "target_noise_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value)
                                                                                       and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class DDPGSettings(OffPolicySettings):
    """DDPG: the shared settings plus Gaussian exploration noise (as TD3's; the DDPG paper's
    Ornstein-Uhlenbeck noise is not needed, TD3's authors found Gaussian noise as good)."""

    action_noise_std: float = 0.1
    """Std of the Gaussian exploration noise (units of the Box's half-width)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_noise(self.action_noise_std)


@dataclass(frozen=True)
class SACSettings(OffPolicySettings):
    """SAC: the shared settings with SAC's step size and the entropy coefficient."""

    learning_rate: float = 3e-4
    """Adam step size (SB3's SAC default, the SAC paper's)."""
    ent_coef: str = "auto"
    """Entropy coefficient: ``auto`` (learnt towards target entropy -dim(A), SB3's
    default), ``auto_<initial value>``, or a fixed number such as ``0.01``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        text = self.ent_coef
        if not isinstance(text, str):
            raise ValueError(f"ent_coef must be 'auto', 'auto_<number>' or a number, got {text!r}")
        number = text[len("auto_"):] if text.startswith("auto_") else (None if text == "auto" else text)
        if number is not None:
            try:
                ok = math.isfinite(float(number)) and float(number) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"ent_coef must be 'auto', 'auto_<number>' or a number > 0, got {text!r}")

    def algorithm_kwargs(self) -> dict[str, Any]:
        kwargs = super().algorithm_kwargs()
        kwargs["ent_coef"] = self.ent_coef if self.ent_coef.startswith("auto") else float(self.ent_coef)
        return kwargs


SETTINGS_CLASSES: dict[str, type[OffPolicySettings]] = {"td3": TD3Settings, "sac": SACSettings,
                                                        "ddpg": DDPGSettings}


def build_model(algo: str, settings: OffPolicySettings, env: AwakeSteering, seed: int) -> Any:
    """An untrained SB3 ``algo`` model on ``env`` with exactly ``settings`` (CPU)."""
    import torch
    from stable_baselines3 import DDPG, SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    cls = {"td3": TD3, "sac": SAC, "ddpg": DDPG}[algo]
    if not isinstance(settings, SETTINGS_CLASSES[algo]):
        raise TypeError(f"{algo} needs {SETTINGS_CLASSES[algo].__name__}, got {type(settings).__name__}")
    kwargs = settings.algorithm_kwargs()
    noise_std = kwargs.pop("action_noise_std", None)
    if noise_std:  # SB3 adds the noise to the action scaled to [-1, 1]
        dim = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), noise_std * np.ones(dim))
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[settings.activation]
    policy_kwargs = {"net_arch": {"pi": list(settings.net_arch_pi), "qf": list(settings.net_arch_qf)},
                     "activation_fn": activation}
    model = cls("MlpPolicy", env, policy_kwargs=policy_kwargs, seed=seed, verbose=0, device="cpu", **kwargs)
    model.set_logger(silent_logger())  # no SB3-<date> folders in the temporary directory
    return model


def train_offpolicy(algo: str, settings: OffPolicySettings, config: Config, task: Task, steps: int, seed: int,
                    progress: bool = True, evaluate_every: int | None = None, hook: Hook | None = None,
                    env: Any = None) -> Any:
    """Train SB3 ``algo`` on ``task`` for exactly ``steps`` environment steps.

    ``hook(model, steps)`` as in ``train_ppo``: before training, after the update of the
    first step at or past every multiple of ``evaluate_every`` and after the last update.
    ``env``: the task's environment if the caller built it.
    """
    import torch

    torch.manual_seed(seed)
    env = config.task_family.make_env(task, config.env_kwargs) if env is None else env
    model = build_model(algo, settings, env, seed)
    model.learn(total_timesteps=steps,
                callback=update_callback(steps, evaluate_every or steps, hook, progress, algo.upper()))
    return model
