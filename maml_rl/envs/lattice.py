"""Reading and validating a beam-line description (the project's YAML lattice format).

The format is documented at the top of ``maml_rl/envs/data/tt43.yaml``. Positions are
element centres (MAD-X ``refer = centre``); everything between elements is drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maml_rl.utils.yaml_files import load_yaml

DEFAULT_LATTICE = Path(__file__).resolve().parent / "data" / "tt43.yaml"

ELEMENT_TYPES = ("marker", "monitor", "kicker", "quadrupole", "rbend", "instrument")
_ALLOWED_KEYS = {
    "marker": {"name", "type", "at"},
    "monitor": {"name", "type", "at", "length"},
    "instrument": {"name", "type", "at", "length"},
    "kicker": {"name", "type", "at", "length"},
    "quadrupole": {"name", "type", "at", "length", "k1"},
    "rbend": {"name", "type", "at", "length", "angle", "tilt", "hgap", "fint", "e1", "e2"},
}
# Positions within this distance are treated as coincident (MAD-X prints 9 decimals).
POSITION_TOLERANCE = 1e-9


class LatticeError(ValueError):
    """A lattice file is missing, malformed or physically inconsistent."""


@dataclass(frozen=True)
class Element:
    """One element of the line.

    Attributes
    ----------
    name, kind
        Lower-case name and type (one of ``ELEMENT_TYPES``).
    s_entry, length
        Entry position and length along the design orbit [m].
    k1_variable
        Strength variable of a quadrupole, else ``None``.
    angle, tilt, hgap, fint, e1, e2
        Bend parameters [rad, rad, m, 1, rad, rad]; ``e1``/``e2`` are added to angle/2.
    """

    name: str
    kind: str
    s_entry: float
    length: float = 0.0
    k1_variable: str | None = None
    angle: float = 0.0
    tilt: float = 0.0
    hgap: float = 0.0
    fint: float = 0.0
    e1: float = 0.0
    e2: float = 0.0

    @property
    def s_exit(self) -> float:
        return self.s_entry + self.length


@dataclass(frozen=True)
class Lattice:
    """A beam line: ordered elements, nominal strength variables and initial twiss."""

    name: str
    elements: tuple[Element, ...]
    variables: dict[str, float]
    initial_twiss: dict[str, float] = field(default_factory=dict)

    def names_of(self, kind: str) -> tuple[str, ...]:
        """Names of all elements of ``kind`` in beam order."""
        return tuple(e.name for e in self.elements if e.kind == kind)

    def element(self, name: str) -> Element:
        for e in self.elements:
            if e.name == name:
                return e
        raise LatticeError(f"lattice {self.name}: no element named {name!r}")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LatticeError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise LatticeError(f"{what} must be finite, got {value!r}")
    return float(value)


def _parse_variables(raw: Any, length_scale: float, where: str) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise LatticeError(f"{where}: 'variables' must be a non-empty mapping")
    out: dict[str, float] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or set(spec) - {"value", "scaled"} or "value" not in spec:
            raise LatticeError(f"{where}: variable {name!r} needs 'value' (and optional 'scaled')")
        value = _number(spec["value"], f"{where}: variable {name!r}")
        out[str(name).lower()] = value * (length_scale if spec.get("scaled", False) else 1.0)
    return out


def _parse_element(raw: Any, variables: dict[str, float], where: str) -> Element:
    if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
        raise LatticeError(f"{where}: every element needs 'name' and 'type', got {raw!r}")
    name = str(raw["name"]).lower()
    kind = raw["type"]
    if kind not in ELEMENT_TYPES:
        raise LatticeError(f"{where}: element {name!r} has unknown type {kind!r}")
    unknown = set(raw) - _ALLOWED_KEYS[kind]
    if unknown:
        raise LatticeError(f"{where}: element {name!r} ({kind}) has unknown keys {sorted(unknown)}")
    if "at" not in raw:
        raise LatticeError(f"{where}: element {name!r} has no position 'at'")
    at = _number(raw["at"], f"{where}: {name}.at")
    length = _number(raw.get("length", 0.0), f"{where}: {name}.length")
    if length < 0:
        raise LatticeError(f"{where}: element {name!r} has negative length")
    params: dict[str, Any] = {}
    if kind == "quadrupole":
        var = str(raw.get("k1", "")).lower()
        if var not in variables:
            raise LatticeError(f"{where}: quadrupole {name!r} uses unknown variable {raw.get('k1')!r}")
        params["k1_variable"] = var
    if kind == "rbend":
        if length <= 0:
            raise LatticeError(f"{where}: bend {name!r} needs a positive length")
        for key in ("angle", "tilt", "hgap", "fint", "e1", "e2"):
            params[key] = _number(raw.get(key, 0.0), f"{where}: {name}.{key}")
    return Element(name=name, kind=kind, s_entry=at - 0.5 * length, length=length, **params)


def load_lattice(path: str | Path | None = None) -> Lattice:
    """Load and validate a lattice file.

    Parameters
    ----------
    path
        YAML lattice file; default: the TT43 line shipped with the package.

    Returns
    -------
    Lattice
        Elements in beam order up to and including the ``end`` marker.

    Raises
    ------
    LatticeError
        Missing file, bad YAML, unknown keys or types, overlapping elements.
    """
    path = Path(path) if path is not None else DEFAULT_LATTICE
    where = str(path)
    raw = load_yaml(path, LatticeError, "lattice file")
    if not isinstance(raw, dict):
        raise LatticeError(f"{where}: expected a mapping at top level")
    scale_spec = raw.get("length_scale", {"numerator": 1.0, "denominator": 1.0})
    scale = _number(scale_spec.get("numerator"), f"{where}: length_scale.numerator") / _number(
        scale_spec.get("denominator"), f"{where}: length_scale.denominator"
    )
    variables = _parse_variables(raw.get("variables"), scale, where)
    elements = [_parse_element(e, variables, where) for e in raw.get("elements") or []]
    if not elements:
        raise LatticeError(f"{where}: no elements")
    names = [e.name for e in elements]
    if len(set(names)) != len(names):
        raise LatticeError(f"{where}: duplicate element names")
    for a, b in zip(elements, elements[1:]):
        if b.s_entry < a.s_exit - POSITION_TOLERANCE:
            raise LatticeError(f"{where}: elements {a.name!r} and {b.name!r} overlap or are out of order")
    end = str(raw.get("end", elements[-1].name)).lower()
    if end not in names:
        raise LatticeError(f"{where}: end marker {end!r} is not an element")
    elements = elements[: names.index(end) + 1]
    twiss0 = {k: _number(raw.get("initial_twiss", {}).get(k), f"{where}: initial_twiss.{k}")
              for k in ("betx", "alfx", "bety", "alfy")}
    return Lattice(name=str(raw.get("name", path.stem)), elements=tuple(elements),
                   variables=variables, initial_twiss=twiss0)
