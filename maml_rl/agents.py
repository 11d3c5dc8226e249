"""Single-task agents behind one face: PPO, TD3, SAC, DDPG (stable-baselines3), NAF, PER-NAF.

``ppo.py --algo`` trains, saves, loads and evaluates any of them through the functions
here, so there is one code path whatever the algorithm:

* ``default_settings(algo)``: the hyper-parameter dataclass with this project's defaults
  (``PPOSettings``, ``TD3Settings`` / ``SACSettings`` / ``DDPGSettings``, ``NAFConfig``);
  ``apply_overrides`` (``maml_rl.agent_settings``) changes fields from ``--set``;
* ``train_agent``: a trained model with SB3's face (``predict``, ``num_timesteps``);
* ``save_agent`` / ``load_agent``: the weights-only archive of ``maml_rl.model_archive``
  (the PPO file is exactly ``maml_rl.ppo_model_file``'s); loading rebuilds the model from
  the settings in the file and loads the tensors, nothing is unpickled;
* ``agent_controller``: deterministic actions for ``maml_rl.evaluation.evaluate``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from maml_rl.agent_settings import SettingsError, settings_from_dict, settings_to_dict
from maml_rl.baselines.naf import NAF, NAFConfig
from maml_rl.baselines.sb3_offpolicy import OFF_POLICY_ALGOS, SETTINGS_CLASSES, build_model, train_offpolicy
from maml_rl.config import Config
from maml_rl.envs.tasks import Task
from maml_rl.model_archive import first_line, read_archive, write_archive
from maml_rl.ppo_baseline import Hook, ModelFileError, PPOSettings, train_ppo
from maml_rl import ppo_model_file

ALGOS = ("ppo", "td3", "sac", "ddpg", "naf", "per-naf")
LABELS = {"ppo": "PPO", "td3": "TD3", "sac": "SAC", "ddpg": "DDPG", "naf": "NAF", "per-naf": "PER-NAF"}
_NAF_MODULES = ("critics", "targets")


def _check(algo: str) -> None:
    if algo not in ALGOS:
        raise SettingsError(f"unknown algorithm {algo!r} (one of {', '.join(ALGOS)})")


def settings_class(algo: str) -> type:
    """The hyper-parameter dataclass of ``algo``."""
    _check(algo)
    if algo == "ppo":
        return PPOSettings
    if algo in OFF_POLICY_ALGOS:
        return SETTINGS_CLASSES[algo]
    return NAFConfig


def default_settings(algo: str) -> Any:
    """``algo``'s hyper-parameters with this project's defaults (see each dataclass)."""
    return settings_class(algo)()


def default_model_path(algo: str) -> Path:
    """``awake/<algo>/<algo>_model.zip`` (for PPO: the historical ``awake/ppo/ppo_model.zip``)."""
    _check(algo)
    return Path("awake") / algo / f"{algo}_model.zip"


def train_agent(algo: str, settings: Any, config: Config, task: Task, steps: int, seed: int,
                progress: bool = True, evaluate_every: int | None = None, hook: Hook | None = None,
                env: Any = None) -> Any:
    """Train ``algo`` on ``task`` for ``steps`` environment steps (PPO: whole rollouts).

    ``seed`` fixes the network initialisation, exploration and the environment's resets.
    ``hook(model, steps)`` runs before training, after the updates of the first step at or
    past every multiple of ``evaluate_every`` (PPO: after the first update at or past it),
    and after the last update; the model it receives has been updated with exactly
    ``steps`` environment steps. ``env``: the task's environment if the caller built it
    (for example wrapped to count episodes); default ``config.task_family.make_env``.
    """
    _check(algo)
    if algo == "ppo":
        return train_ppo(config, task, steps, seed, progress=progress, evaluate_every=evaluate_every, hook=hook,
                         settings=settings, env=env)
    if algo in OFF_POLICY_ALGOS:
        return train_offpolicy(algo, settings, config, task, steps, seed, progress=progress,
                               evaluate_every=evaluate_every, hook=hook, env=env)
    from maml_rl.console import progress as progress_bar

    env = config.task_family.make_env(task, config.env_kwargs) if env is None else env
    agent = NAF(env, settings, seed=seed, prioritized=algo == "per-naf")
    bar = progress_bar(steps, desc=LABELS[algo], unit="step", enabled=progress)
    every = evaluate_every or steps

    def tick(_agent: NAF, done: int) -> bool:
        bar.update(1)
        if hook is not None and done % every == 0:
            hook(agent, done)
        return True

    if hook is not None:
        hook(agent, 0)
    agent.learn(steps, callback=tick)
    if hook is not None and steps % every != 0:
        hook(agent, agent.num_timesteps)
    bar.close()
    return agent


def _state(algo: str, model: Any) -> dict[str, torch.Tensor]:
    """Every tensor the saved model needs: SB3's whole policy (actor and critics with their
    targets), or NAF's Q networks and target networks."""
    if algo == "naf" or algo == "per-naf":
        return {f"{name}.{key}": value for name in _NAF_MODULES
                for key, value in getattr(model, name).state_dict().items()}
    return model.policy.state_dict()


def save_agent(algo: str, model: Any, settings: Any, path: Path, info: dict[str, Any]) -> None:
    """Write ``model`` as a weights-only archive, atomically (the PPO file as before)."""
    _check(algo)
    if algo == "ppo":
        ppo_model_file.save_model(model, settings, path, info)
        return
    write_archive(path, algo, settings_to_dict(settings), _state(algo, model), info, LABELS[algo])


def _rebuild(algo: str, settings: Any, env: Any) -> Any:
    """An untrained model of ``algo`` with ``settings`` on the spaces of ``env``.

    The replay buffer is not saved, so the rebuilt model gets a one-transition buffer: a
    file cannot make loading allocate ``buffer_size`` transitions (the ``info`` returned
    by :func:`load_agent` keeps the saved value).
    """
    settings = replace(settings, buffer_size=1)
    if algo in OFF_POLICY_ALGOS:
        return build_model(algo, settings, env, seed=0)
    return NAF(env, settings, seed=0, prioritized=algo == "per-naf")


def _load_state(algo: str, model: Any, state: dict[str, torch.Tensor]) -> None:
    if algo in OFF_POLICY_ALGOS:
        model.policy.load_state_dict(state)
        return
    prefixes = tuple(f"{name}." for name in _NAF_MODULES)
    stray = sorted(k for k in state if not k.startswith(prefixes))
    if stray:
        raise KeyError(f"unexpected tensors {stray[:3]}")
    for name in _NAF_MODULES:
        prefix = f"{name}."
        getattr(model, name).load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def load_agent(algo: str, path: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild an ``algo`` model from an archive written by :func:`save_agent`.

    Returns
    -------
    model, info
        The model (CPU, SB3's face) and the archive's ``settings.json`` (``task``,
        ``steps``, ...).

    Raises
    ------
    ModelFileError
        Missing file, another algorithm's or a foreign file, weights that are not plain
        tensors, settings with missing, unknown or bad entries, or weights that do not fit
        the settings.
    """
    _check(algo)
    path = Path(path)
    if algo == "ppo":
        return ppo_model_file.load_model(path)
    label = LABELS[algo]
    raw, state, info = read_archive(path, algo, label)
    try:
        settings = settings_from_dict(settings_class(algo), raw)
    except SettingsError as exc:
        raise ModelFileError(f"{path}: bad {label} settings: {exc}") from None
    model = _rebuild(algo, settings, ppo_model_file.spaces_env(path, info))
    try:
        _load_state(algo, model, state)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: weights do not fit the settings: {first_line(exc)}") from None
    return model, info


def agent_controller(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Deterministic controller (obs batch -> action batch) of any agent here."""
    return lambda obs: model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)[0]

