"""Single-task PPO baseline with stable-baselines3 (Schulman et al. 2017, "Proximal Policy
Optimization Algorithms"): SB3's PPO and MlpPolicy with SB3's default hyper-parameters,
written out explicitly (``PPOSettings``) so that a saved model can be rebuilt from JSON,
trained on one task of the AWAKE steering environment.

PPO changes its policy only in ``train()``, once per rollout of ``n_steps`` environment
steps. Evaluations therefore run between updates (at the start of the next rollout and at
the end of ``learn``), never inside a rollout: SB3 calls ``_on_step`` before ``train()``
has used the rollout, so an evaluation there would score the previous update's policy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import numpy as np

from maml_rl.config import Config
from maml_rl.envs.tasks import Task

Hook = Callable[[Any, int], None]
ACTIVATIONS = ("tanh", "relu")


class ModelFileError(RuntimeError):
    """A saved PPO model is missing, unreadable, not this project's, or must not be overwritten."""


@dataclass(frozen=True)
class PPOSettings:
    """Hyper-parameters of SB3's PPO (its defaults) and the MlpPolicy architecture.

    Attributes
    ----------
    n_steps : environment steps per rollout, i.e. between two policy updates
    batch_size : minibatch size of the PPO epochs
    n_epochs : passes over each rollout
    learning_rate : Adam step size (constant)
    gamma, gae_lambda : discount and GAE lambda
    clip_range : PPO ratio clip
    ent_coef, vf_coef : entropy and value-loss weights
    max_grad_norm : gradient-norm clip
    net_arch_pi, net_arch_vf : hidden layers of the policy and value networks
    activation : "tanh" or "relu"
    """

    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch_pi: tuple[int, ...] = (64, 64)
    net_arch_vf: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "n_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("learning_rate", "gamma", "gae_lambda", "clip_range", "ent_coef", "vf_coef", "max_grad_norm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("net_arch_pi", "net_arch_vf"):
            layers = getattr(self, name)
            if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in layers):
                raise ValueError(f"{name} must be positive layer widths, got {layers!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Any) -> "PPOSettings":
        """Inverse of ``as_dict``; ``ValueError`` names a missing, unknown or bad entry."""
        if not isinstance(data, dict):
            raise ValueError("PPO settings must be a JSON object")
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ValueError(f"PPO settings: missing {sorted(names - set(data))}, unknown {sorted(set(data) - names)}")
        values = dict(data)
        for name in ("net_arch_pi", "net_arch_vf"):
            if not isinstance(values[name], list):
                raise ValueError(f"{name} must be a list of layer widths")
            values[name] = tuple(values[name])
        return cls(**values)


def make_env(config: Config, task: Task | Any) -> Any:
    """The single-task environment of the config's family on ``task`` (AWAKE: ``AwakeSteering``)."""
    return config.task_family.make_env(task, config.env_kwargs)


def build_model(settings: PPOSettings, env: Any, seed: int) -> Any:
    """An untrained SB3 PPO model on ``env`` with exactly ``settings`` (CPU)."""
    import torch
    from stable_baselines3 import PPO

    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[settings.activation]
    policy_kwargs = {"net_arch": {"pi": list(settings.net_arch_pi), "vf": list(settings.net_arch_vf)},
                     "activation_fn": activation}
    algorithm = {k: v for k, v in asdict(settings).items()
                 if k not in ("net_arch_pi", "net_arch_vf", "activation")}
    model = PPO("MlpPolicy", env, policy_kwargs=policy_kwargs, seed=seed, verbose=0, device="cpu", **algorithm)
    model.set_logger(silent_logger())
    return model


def silent_logger() -> Any:
    """An SB3 logger without outputs. Without one, every ``learn`` at verbose 0 configures a
    default logger, which leaves an empty ``SB3-<date>`` folder in the temporary directory."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


def update_callback(total: int, every: int, hook: Hook | None, progress: bool, label: str = "PPO") -> Any:
    """SB3 callback: progress bar, and ``hook`` after updates (imported lazily with SB3).

    ``hook(model, steps)`` runs at the start of a rollout (every rollout collected so far has
    been used by ``train()``) once ``steps`` reached the next multiple of ``every``, and after
    the last update. This holds for PPO and for SB3's off-policy algorithms alike: both call
    ``train()`` between ``collect_rollouts`` calls (off-policy with ``train_freq=1``: after
    every step, so the hook runs exactly at the multiples of ``every``).
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from maml_rl.console import progress as progress_bar

    class Callback(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = progress_bar(total, desc=label, unit="step", enabled=progress)  # plain lines off a terminal
            self.next_hook = 0
            self.last_hook = -1

        def _after_update(self, final: bool) -> None:
            # model.num_timesteps: the callback's own counter is only refreshed in on_step.
            steps = self.model.num_timesteps
            if hook is None or steps == self.last_hook or (steps < self.next_hook and not final):
                return
            self.last_hook = steps
            while self.next_hook <= steps:
                self.next_hook += every
            hook(self.model, steps)

        def _on_rollout_start(self) -> None:
            # Every rollout collected so far has been used by train(): the policy has seen
            # exactly num_timesteps steps (off-policy: before learning_starts it has not changed).
            self._after_update(final=False)

        def _on_step(self) -> bool:
            self.bar.update(1)
            return True

        def _on_training_end(self) -> None:
            self._after_update(final=True)
            self.bar.close()

    return Callback()


def train_ppo(config: Config, task: Task, steps: int, seed: int, progress: bool = True,
              evaluate_every: int | None = None, hook: Hook | None = None,
              settings: PPOSettings | None = None, env: Any = None) -> Any:
    """Train SB3 PPO on ``task`` for ``steps`` environment steps (rounded up to whole rollouts).

    ``hook(model, steps_trained_on)`` runs before the first update, after the first update at
    or past every multiple of ``evaluate_every`` steps, and after the last update; the
    model it receives has been updated with exactly ``steps_trained_on`` environment steps.
    ``env``: the task's environment if the caller built it (e.g. wrapped to count episodes).
    """
    import torch

    settings = settings or PPOSettings()
    torch.manual_seed(seed)
    model = build_model(settings, make_env(config, task) if env is None else env, seed)
    whole_rollouts = -(-steps // settings.n_steps) * settings.n_steps  # what learn() will collect
    model.learn(total_timesteps=steps,
                callback=update_callback(whole_rollouts, evaluate_every or steps, hook, progress))
    return model


def ppo_controller(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Deterministic controller (obs batch -> action batch) of a PPO model."""
    return lambda obs: model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)[0]
