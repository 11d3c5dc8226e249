"""Typed configuration of meta-training and of test-time adaptation.

A config file is YAML with dashed keys (``fast-lr``), as users of the earlier
implementation know them. Every required key must be present, no unknown key is
allowed, and every value must have the declared type; errors name the key and the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from maml_rl.families import DEFAULT_FAMILY, UnknownFamilyError, get_family
from maml_rl.families.base import FamilyEnvironment, TaskFamily
from maml_rl.families.step_cost import with_step_cost
from maml_rl.utils.yaml_files import load_yaml


class ConfigError(ValueError):
    """A configuration file is missing or invalid."""


def _doc(text: str, **kwargs: Any) -> Any:
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class Config:
    """Hyperparameters of MAML-TRPO on the tasks of one family (see configs/awake.yaml, configs/ares_ea.yaml)."""

    env_name: str = _doc("gymnasium id of the family's environment (AwakeSteering-v0, AresEA-v0)")
    env_kwargs: dict = _doc("options of the environment (AWAKE: plane, max_time, reward shaping, ...)")
    gamma: float = _doc("discount factor")
    gae_lambda: float = _doc("lambda of generalised advantage estimation")
    first_order: bool = _doc("first-order MAML (inner gradients treated as constants)")
    hidden_sizes: list = _doc("widths of the policy's hidden layers")
    nonlinearity: str = _doc("activation of the hidden layers: tanh, relu or elu")
    fast_batch_size: int = _doc("episodes per task for each inner step and for validation")
    num_steps: int = _doc("inner-loop gradient steps")
    fast_lr: float = _doc("inner-loop step size")
    num_batches: int = _doc("meta-batches (outer updates) of a run")
    meta_batch_size: int = _doc("tasks per meta-batch")
    max_kl: float = _doc("TRPO trust-region radius (mean KL)")
    cg_iters: int = _doc("conjugate-gradient iterations")
    cg_damping: float = _doc("damping added to the KL Hessian")
    ls_max_steps: int = _doc("line-search trials")
    ls_backtrack_ratio: float = _doc("line-search step shrink factor")
    init_std: float = _doc("initial policy standard deviation (optional)", default=0.5)
    init_mean_scale: float = _doc("factor on the initial weights of the policy's mean layer (optional, 1 = Xavier; "
                                  "small values start the policy near the zero action)", default=1.0)
    adv_std_floor: float = _doc("floor of the per-task advantage std used for normalisation (optional, 0 = none)",
                                default=0.0)
    hard_task_fraction: float = _doc("fraction of each meta-batch refilled with recently failed tasks "
                                     "(optional, 0 = uniform tasks only; maml_rl.curriculum)", default=0.0)
    hard_task_pool: int = _doc("most recently failed tasks kept for revisiting (optional)", default=64)
    family: str = _doc("task family, a folder of maml_rl/families (optional): awake or ares_ea", default=DEFAULT_FAMILY)
    step_cost_ms: float = _doc("simulated cost of every episode step in milliseconds, a busy-wait standing in for an "
                               "expensive simulator (optional, 0 = none; maml_rl.families.step_cost)", default=0.0)

    @property
    def task_family(self) -> TaskFamily:
        """The family the config names (``maml_rl.families.get_family``)."""
        return get_family(self.family)

    def environment(self) -> FamilyEnvironment:
        """The family's environment settings built from ``env-kwargs`` (with ``step-cost-ms``, if set)."""
        return with_step_cost(self.task_family.environment(self.env_kwargs), self.step_cost_ms)

    def to_yaml_dict(self) -> dict[str, Any]:
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in dataclasses.fields(self)}


OPTIONAL_KEYS = {f.name for f in dataclasses.fields(Config) if f.default is not dataclasses.MISSING}


def _check_type(key: str, value: Any, expected: Any, where: str) -> Any:
    origin = get_origin(expected) or expected
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
        return value
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise ConfigError(f"{where}: '{key}' must be a non-empty list of positive integers, got {value!r}")
        return list(value)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    raise AssertionError(f"unhandled type {expected}")  # pragma: no cover


def _check_values(config: Config, where: str) -> None:
    checks = [
        ("gamma", 0 < config.gamma <= 1, "must lie in (0, 1]"),
        ("gae-lambda", 0 <= config.gae_lambda <= 1, "must lie in [0, 1]"),
        ("fast-batch-size", config.fast_batch_size >= 1, "must be >= 1"),
        ("num-steps", config.num_steps >= 1, "must be >= 1 (MAML adapts with at least one inner step)"),
        ("fast-lr", config.fast_lr >= 0, "must be >= 0"),
        ("num-batches", config.num_batches >= 1, "must be >= 1"),
        ("meta-batch-size", config.meta_batch_size >= 1, "must be >= 1"),
        ("max-kl", config.max_kl > 0, "must be > 0"),
        ("cg-iters", config.cg_iters >= 1, "must be >= 1"),
        ("cg-damping", config.cg_damping >= 0, "must be >= 0"),
        ("ls-max-steps", config.ls_max_steps >= 1, "must be >= 1"),
        ("ls-backtrack-ratio", 0 < config.ls_backtrack_ratio < 1, "must lie in (0, 1)"),
        ("nonlinearity", config.nonlinearity in ("tanh", "relu", "elu"), "must be tanh, relu or elu"),
        ("init-std", config.init_std > 0, "must be > 0"),
        ("init-mean-scale", config.init_mean_scale > 0, "must be > 0"),
        ("adv-std-floor", config.adv_std_floor >= 0, "must be >= 0"),
        ("hard-task-fraction", 0 <= config.hard_task_fraction < 1, "must lie in [0, 1)"),
        ("hard-task-pool", config.hard_task_pool >= 1, "must be >= 1"),
        ("step-cost-ms", 0 <= config.step_cost_ms < float("inf"), "must be >= 0"),
    ]
    for key, ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: '{key}' {message}")
    try:
        family = get_family(config.family)
    except UnknownFamilyError as exc:
        raise ConfigError(f"{where}: 'family': {exc}") from None
    if config.env_name != family.env_id:
        raise ConfigError(f"{where}: 'env-name' must be {family.env_id} (the environment of family "
                          f"'{family.name}'), got {config.env_name!r}")
    try:
        family.environment(config.env_kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: 'env-kwargs' has an unknown option ({exc})") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: 'env-kwargs': {exc}") from None


def config_from_dict(raw: Any, where: str = "<config>") -> Config:
    """Validate a mapping with dashed keys and build a ``Config``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values")
    types = get_type_hints(Config)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in types:
            raise ConfigError(f"{where}: unknown key '{key}'")
        values[name] = _check_type(str(key), value, types[name], where)
    missing = [n.replace("_", "-") for n in types if n not in values and n not in OPTIONAL_KEYS]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(repr(m) for m in missing)}")
    config = Config(**values)
    _check_values(config, where)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    return config_from_dict(load_yaml(path, ConfigError, "config file"), str(path))


def require_family(config: Config, family: str, tool: str) -> Config:
    """Refuse (one line) a config of another family for a tool written for ``family`` only."""
    if config.family != family:
        raise ConfigError(f"{tool} supports the '{family}' family only; the config names family '{config.family}'")
    return config


def describe() -> str:
    """One line per key: name and meaning (for --help texts and docs)."""
    return "\n".join(f"  {f.name.replace('_', '-'):20s} {f.metadata['doc']}" for f in dataclasses.fields(Config))
