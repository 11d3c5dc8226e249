"""Hyper-parameter dataclasses <-> text and JSON, strictly.

Every single-task algorithm keeps its hyper-parameters in one dataclass (``PPOSettings``,
``TD3Settings``, ``NAFConfig``, ...). This module turns ``--set key=value`` options and the
JSON of a model file into such a dataclass using the field's type hint only: an unknown
key, a missing key (JSON), or a value of the wrong type is refused with a
:class:`SettingsError` naming it, before anything is trained or built. The dataclass's own
``__post_init__`` then checks ranges. No torch here, so the CLI can import it cheaply.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any, Sequence, TypeVar

S = TypeVar("S")


class SettingsError(ValueError):
    """A hyper-parameter override or a saved settings entry is unknown, missing or bad."""


def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _optional(hint: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) of ``X | None`` / ``Optional[X]``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def _from_text(hint: Any, text: str) -> Any:
    """The value of ``text`` for a field of type ``hint``; ``ValueError`` if it does not fit."""
    inner, nullable = _optional(hint)
    if nullable and text.strip().lower() in ("none", "null"):
        return None
    if inner is bool:
        if text.strip().lower() not in ("true", "false"):
            raise ValueError("must be true or false")
        return text.strip().lower() == "true"
    if inner is int:
        try:
            return int(text)
        except ValueError:
            number = float(text)  # 1e5 is accepted for 100000, 1.5 is not
            if not number.is_integer():
                raise ValueError("must be an integer") from None
            return int(number)
    if inner is float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if inner is str:
        return text
    if typing.get_origin(inner) is tuple:  # layer widths: "64,64" or "[64, 64]"
        parts = [p for p in text.strip().strip("[]()").split(",") if p.strip()]
        if not parts or not all(p.strip().lstrip("+-").isdigit() for p in parts):
            raise ValueError("must be comma-separated integers, e.g. 64,64")
        return tuple(int(p) for p in parts)
    raise ValueError(f"cannot parse a value of type {hint}")


def _from_json(hint: Any, value: Any) -> Any:
    """``value`` (parsed JSON) checked against ``hint``; lists become tuples."""
    inner, nullable = _optional(hint)
    if value is None and nullable:
        return None
    if inner is bool and isinstance(value, bool):
        return value
    if inner is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if inner is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if inner is str and isinstance(value, str):
        return value
    if typing.get_origin(inner) is tuple and isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"{value!r} is not a {getattr(inner, '__name__', inner)}")


def apply_overrides(settings: S, items: Sequence[str], algo: str) -> S:
    """``settings`` with ``key=value`` overrides (``--set``), parsed strictly.

    Raises
    ------
    SettingsError
        Not ``key=value``, an unknown or repeated key, a value of the wrong type, or a
        value the dataclass's checks refuse; the message names the key.
    """
    if not items:
        return settings
    hints = _hints(type(settings))
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--set {item!r}: expected key=value")
        if key not in hints:
            raise SettingsError(f"--set {key}: unknown setting for {algo} (known: {', '.join(hints)})")
        if key in changes:
            raise SettingsError(f"--set {key}: given twice")
        try:
            changes[key] = _from_text(hints[key], text)
        except ValueError as exc:
            # our own messages say what is expected; int()/float()'s do not
            expected = getattr(hints[key], "__name__", hints[key])
            reason = str(exc) if "must" in str(exc) else f"must be of type {expected}"
            raise SettingsError(f"--set {key}={text}: {reason}") from None
    try:
        return replace(settings, **changes)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"--set {', '.join(changes)}: {exc}") from None


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """JSON-ready form of a settings dataclass (tuples become lists)."""
    assert is_dataclass(settings)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}


def settings_from_dict(cls: type[S], data: Any) -> S:
    """Inverse of :func:`settings_to_dict`: exactly the dataclass's keys, each of its type.

    Raises
    ------
    SettingsError
        Not an object, missing or unknown keys, a value of the wrong type, or a value the
        dataclass's checks refuse.
    """
    if not isinstance(data, dict):
        raise SettingsError("settings must be a JSON object")
    hints = _hints(cls)
    if set(data) != set(hints):
        raise SettingsError(f"missing {sorted(set(hints) - set(data))}, unknown {sorted(set(data) - set(hints))}")
    values = {}
    for key, hint in hints.items():
        try:
            values[key] = _from_json(hint, data[key])
        except ValueError as exc:
            raise SettingsError(f"{key}: {exc}") from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
