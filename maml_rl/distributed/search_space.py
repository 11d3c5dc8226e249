"""The search space of ``tune.py``: which meta-training hyper-parameters vary, and how.

A space maps config keys (dashed, as in configs/awake.yaml; options of the environment
under ``env-kwargs``) to a distribution or a fixed value. In a YAML space file::

    fast-lr: {loguniform: [0.001, 0.1]}
    meta-batch-size: {choice: [4, 8, 16]}
    hidden-sizes: {choice: [[32, 32], [64, 64]]}
    max-kl: 0.001                      # fixed: not searched
    env-kwargs:
      beam_loss_penalty: {uniform: [50, 400]}

Distributions: ``loguniform: [low, high]`` (log-uniform, for step sizes and radii that
matter by their order of magnitude), ``uniform: [low, high]``, ``randint: [low, high]``
(integers low..high-1) and ``choice: [values]``. ``DEFAULT_SPACE`` is centred on
configs/awake.yaml: each continuous range spans about one decade either side of the
shipped value (fast-lr 1e-2, max-kl 1e-3; beam-loss penalty 200 in 50..800), each choice
holds the shipped value and its neighbours by a factor 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from maml_rl.config import Config, ConfigError, config_from_dict
from maml_rl.utils.yaml_files import load_yaml

KINDS = ("loguniform", "uniform", "randint", "choice")
NESTED = "env-kwargs"  # the one config key whose value is a mapping of options


@dataclass(frozen=True)
class Dimension:
    """One searched or fixed hyper-parameter: ``kind`` (one of ``KINDS`` or ``fixed``) and its arguments."""

    kind: str
    args: tuple

    def extremes(self) -> list[Any]:
        """Values that bound the dimension (checked against the config before a search starts)."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "fixed":
            return [self.args[0]]
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [float(self.args[0]), float(self.args[1])]  # continuous draws are floats

    def to_tune(self) -> Any:
        """The Ray Tune domain (``tune.loguniform`` ...), or the fixed value itself."""
        from ray import tune

        if self.kind == "fixed":
            return self.args[0]
        if self.kind == "choice":
            return tune.choice(list(self.args))
        return getattr(tune, self.kind)(*self.args)

    def to_yaml(self) -> Any:
        if self.kind == "fixed":
            return self.args[0]
        return {self.kind: list(self.args)}


# Keys are paths into the config: ("fast-lr",) or ("env-kwargs", "beam_loss_penalty").
Space = dict[tuple[str, ...], Dimension]

DEFAULT_SPACE: Space = {
    ("fast-lr",): Dimension("loguniform", (1e-3, 1e-1)),
    ("max-kl",): Dimension("loguniform", (1e-4, 1e-2)),
    ("meta-batch-size",): Dimension("choice", (4, 8, 16)),
    ("fast-batch-size",): Dimension("choice", (8, 16, 32)),
    ("num-steps",): Dimension("choice", (2, 4, 8)),
    ("hidden-sizes",): Dimension("choice", ((32, 32), (64, 64), (128, 128))),
    (NESTED, "beam_loss_penalty"): Dimension("loguniform", (50.0, 800.0)),
}


def key_name(path: tuple[str, ...]) -> str:
    """Column name of a dimension: ``fast-lr``, ``env-kwargs.beam_loss_penalty``."""
    return ".".join(path)


def _dimension(value: Any, where: str) -> Dimension:
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in KINDS:
            raise ConfigError(f"{where}: a distribution is one of {', '.join(KINDS)} with its arguments, "
                              f"got {value!r}")
        kind, args = next(iter(value.items()))
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}: '{kind}' needs a list of arguments, got {args!r}")
        if kind == "choice":
            return Dimension(kind, tuple(tuple(a) if isinstance(a, list) else a for a in args))
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"{where}: '{kind}' needs [low, high], got {args!r}")
        low, high = args
        if not low < high or (kind == "loguniform" and low <= 0):
            raise ConfigError(f"{where}: '{kind}' needs low < high" + (" and low > 0" if kind == "loguniform" else "")
                              + f", got {args!r}")
        if kind == "randint" and not all(isinstance(a, int) for a in args):
            raise ConfigError(f"{where}: 'randint' needs integer bounds, got {args!r}")
        return Dimension(kind, (low, high))
    return Dimension("fixed", (tuple(value) if isinstance(value, list) else value,))


def space_from_dict(raw: Any, where: str) -> Space:
    """Parse a space (see the module doc); keys and values are checked by ``check_space``."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: a search space is a non-empty mapping of config keys to distributions")
    space: Space = {}
    for key, value in raw.items():
        if key == NESTED:
            if not isinstance(value, dict) or not value:
                raise ConfigError(f"{where}: '{NESTED}' holds a mapping of environment options to distributions")
            for option, sub in value.items():
                space[(NESTED, str(option))] = _dimension(sub, f"{where}: '{NESTED}.{option}'")
        else:
            space[(str(key),)] = _dimension(value, f"{where}: '{key}'")
    return space


def load_space(path: Path) -> Space:
    """A space from a YAML file (one-line ``ConfigError`` on a bad file)."""
    return space_from_dict(load_yaml(path, ConfigError, "search-space file"), str(path))


def space_to_dict(space: Space) -> dict[str, Any]:
    """The YAML form of ``space`` (``space_from_dict`` reads it back)."""
    out: dict[str, Any] = {}
    for path, dim in space.items():
        target = out.setdefault(NESTED, {}) if len(path) == 2 else out
        target[path[-1]] = dim.to_yaml()
    return out


def _plain(value: Any) -> Any:
    """Tuples (choices of layer widths) as lists, as a config holds them."""
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def apply(base: Mapping[str, Any], values: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """The config dict ``base`` with ``values`` (path -> value) substituted."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for path, value in values.items():
        if len(path) == 2:
            out[path[0]] = {**(out.get(path[0]) or {}), path[1]: _plain(value)}
        else:
            out[path[0]] = _plain(value)
    return out


def check_space(base: Mapping[str, Any], space: Space, where: str) -> None:
    """Refuse (``ConfigError``, one line) a space whose keys or bounds make an invalid config:
    each dimension's extreme values are substituted into ``base`` and validated."""
    for path in space:
        if path[0] == "num-batches":
            raise ConfigError(f"{where}: 'num-batches' is the budget per trial (--num-batches), not a searched key")
    for path, dim in space.items():
        for value in dim.extremes():
            config_from_dict(apply(base, {path: value}), f"{where}: '{key_name(path)}' = {_plain(value)!r}")


def flatten(config: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of a Tune trial config, nested ``env-kwargs`` included."""
    for key, value in config.items():
        if isinstance(value, dict):
            for option, sub in value.items():
                yield (key, option), sub
        else:
            yield (key,), value


def trial_config(base: Mapping[str, Any], sample: Mapping[str, Any], num_batches: int) -> Config:
    """The validated ``Config`` of one trial: ``base`` with the trial's sampled values and the budget."""
    data = apply(base, dict(flatten(sample)))
    data["num-batches"] = num_batches
    return config_from_dict(data, "trial config")


def to_tune(space: Space) -> dict[str, Any]:
    """Ray Tune's ``param_space`` (nested like the config)."""
    out: dict[str, Any] = {}
    for path, dim in space.items():
        target = out.setdefault(path[0], {}) if len(path) == 2 else out
        target[path[-1]] = dim.to_tune()
    return out
