"""Single-task PPO baseline with stable-baselines3 (Schulman et al. 2017, "Proximal Policy
Optimization Algorithms"): SB3's PPO with its default MlpPolicy and hyperparameters,
trained on one task of the AWAKE steering environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from maml_rl.config import Config
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.tasks import Task
from maml_rl.runio import atomic_write_text


class ModelFileError(RuntimeError):
    """A saved PPO model is missing or unreadable."""


def make_env(config: Config, task: Task) -> AwakeSteering:
    return AwakeSteering(task=task, **config.env_kwargs)


class _Callback:
    """SB3 callback factory: progress bar and periodic hook (imported lazily with SB3)."""

    @staticmethod
    def build(total: int, every: int, hook: Callable[[Any, int], bool] | None, progress: bool) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback
        from tqdm import tqdm

        class Callback(BaseCallback):
            def _on_training_start(self) -> None:
                self.bar = tqdm(total=total, desc="PPO", unit="step", disable=not progress, dynamic_ncols=True)
                self.next_hook = every

            def _on_step(self) -> bool:
                self.bar.update(1)
                if hook is not None and self.num_timesteps >= self.next_hook:
                    self.next_hook += every
                    return bool(hook(self.model, self.num_timesteps))
                return True

            def _on_training_end(self) -> None:
                self.bar.close()

        return Callback()


def train_ppo(config: Config, task: Task, steps: int, seed: int, progress: bool = True,
              evaluate_every: int | None = None, hook: Callable[[Any, int], bool] | None = None) -> Any:
    """Train SB3 PPO on ``task``; ``hook(model, steps_so_far)`` runs every ``evaluate_every``
    steps and may return False to stop early."""
    import torch
    from stable_baselines3 import PPO

    torch.manual_seed(seed)
    model = PPO("MlpPolicy", make_env(config, task), seed=seed, verbose=0, device="cpu")
    callback = _Callback.build(steps, evaluate_every or steps + 1, hook, progress)
    model.learn(total_timesteps=steps, callback=callback)
    return model


def ppo_controller(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Deterministic controller (obs batch -> action batch) of a PPO model."""
    return lambda obs: model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)[0]


def save_model(model: Any, path: Path, info: dict[str, Any]) -> None:
    """Save the SB3 model (``path``, a .zip) and what it was trained on (``path`` with .json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    atomic_write_text(path.with_suffix(".json"), json.dumps(info, indent=1))


def load_model(path: Path) -> tuple[Any, dict[str, Any]]:
    from stable_baselines3 import PPO

    if not path.is_file():
        raise ModelFileError(f"PPO model file not found: {path} (train one with python ppo.py --train)")
    try:
        model = PPO.load(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - SB3 raises many kinds of errors for bad files
        raise ModelFileError(f"cannot read PPO model {path} ({exc.__class__.__name__})") from None
    info_path = path.with_suffix(".json")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return model, info
