"""Orbit response matrices and twiss functions of the AWAKE electron line (TT43).

A task is a set of scale factors on the 10 quadrupole strength variables
(``QUAD_VARIABLES``); its response matrices are

    R_h[i, j] = 0.5 * T_ij[x, x'],   R_v[i, j] = 0.5 * T_ij[y, y'],

with T_ij the 4x4 transfer matrix from the exit of kicker j to monitor i (zero when the
monitor is upstream of the kicker). For an uncoupled line this equals
0.5 * sqrt(beta_i beta_j) sin(2 pi (mu_i - mu_j)); the factor 0.5 is the earlier
implementation's convention. Observations use monitors 2..11 and actions kickers 1..10.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from maml_rl.envs.lattice import POSITION_TOLERANCE, Lattice, load_lattice
from maml_rl.envs.optics import CompiledLine, drift_map, element_map, symplectic_inverse, twiss_from_maps

QUAD_VARIABLES: tuple[str, ...] = (
    "kqd430031", "kqf430034", "kqd430037", "kqd430109", "kqf430118",
    "kqf430311", "kqf430205", "kqd412344", "kqf412346", "kqd412347",
)
RESPONSE_SCALE = 0.5


def validate_factors(factors: Any) -> tuple[np.ndarray, bool]:
    """Turn user scale factors into an (N, 10) array.

    Parameters
    ----------
    factors
        ``None`` (nominal optics), a mapping ``{variable: factor}`` (missing names mean 1),
        a (10,) array (one task) or an (N, 10) array (columns in ``QUAD_VARIABLES`` order).

    Returns
    -------
    (array, batched)
        The (N, 10) factors and whether the caller passed a batch.

    Raises
    ------
    ValueError
        Unknown variable name, wrong shape, non-finite or non-positive factor.
    """
    if factors is None:
        return np.ones((1, len(QUAD_VARIABLES))), False
    if isinstance(factors, Mapping):
        row = np.ones(len(QUAD_VARIABLES))
        for name, value in factors.items():
            key = str(name).lower()
            if key not in QUAD_VARIABLES:
                raise ValueError(f"unknown quadrupole variable {name!r}; expected one of {', '.join(QUAD_VARIABLES)}")
            try:
                row[QUAD_VARIABLES.index(key)] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"scale factor of {name!r} is not a number: {value!r}") from None
        array, batched = row[None, :], False
    else:
        try:
            array = np.asarray(factors, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"scale factors must be numeric, got {type(factors).__name__}") from None
        batched = array.ndim == 2
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != len(QUAD_VARIABLES):
            raise ValueError(
                f"scale factors must have shape (10,) or (N, 10), got {np.shape(factors)}")
    if not np.all(np.isfinite(array)):
        raise ValueError("scale factors must be finite (found nan or inf)")
    if np.any(array <= 0):
        raise ValueError(f"scale factors must be positive (found {array.min():g})")
    return array, batched


class ResponseModel:
    """Response matrices for batches of quadrupole settings of one lattice.

    Parameters
    ----------
    lattice
        The line; default TT43 as shipped.
    uncoupled
        Drop the x-y coupling tilt (MAD-X reference ``untilted_nominal``).
    """

    def __init__(self, lattice: Lattice | None = None, uncoupled: bool = False) -> None:
        self.lattice = lattice or load_lattice()
        missing = set(QUAD_VARIABLES) ^ set(self.lattice.variables)
        if missing:
            raise ValueError(f"lattice variables differ from QUAD_VARIABLES: {sorted(missing)}")
        self.monitors = self.lattice.names_of("monitor")[1:11]
        self.kickers = self.lattice.names_of("kicker")[0:10]
        self._line = CompiledLine(self.lattice, self.monitors + self.kickers, uncoupled=uncoupled)
        self._nominal = np.array([self.lattice.variables[v] for v in QUAD_VARIABLES])
        self._line_order = [QUAD_VARIABLES.index(v) for v in self._line.variable_names]
        s_mon = np.array([self.lattice.element(m).s_exit for m in self.monitors])
        s_kick = np.array([self.lattice.element(k).s_exit for k in self.kickers])
        self.downstream = s_mon[:, None] >= s_kick[None, :] - POSITION_TOLERANCE

    def __call__(self, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 10) validated factors -> (R_h, R_v), each (N, 10, 10)."""
        values = (self._nominal * factors)[:, self._line_order]
        maps = self._line.maps(values)
        n_mon = len(self.monitors)
        at_monitor, inv_kicker = maps[:, :n_mon], symplectic_inverse(maps[:, n_mon:])
        # T_ij = M_i M_j^-1; only the (x, x') and (y, y') elements are needed.
        rh = np.einsum("nik,njk->nij", at_monitor[:, :, 0, :], inv_kicker[:, :, :, 1])
        rv = np.einsum("nik,njk->nij", at_monitor[:, :, 2, :], inv_kicker[:, :, :, 3])
        mask = self.downstream * RESPONSE_SCALE
        return rh * mask, rv * mask


@lru_cache(maxsize=2)
def default_model(uncoupled: bool = False) -> ResponseModel:
    """The shipped TT43 model, built once per process."""
    return ResponseModel(uncoupled=uncoupled)


def response_matrices(factors: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical response matrices of TT43 [m/rad].

    Parameters
    ----------
    factors
        ``None`` (nominal), ``{variable: factor}``, (10,) or (N, 10) scale factors on
        ``QUAD_VARIABLES``.

    Returns
    -------
    (R_h, R_v)
        Two (10, 10) arrays, or (N, 10, 10) for a batch; rows = monitors 2..11,
        columns = kickers 1..10, beam order.
    """
    array, batched = validate_factors(factors)
    rh, rv = default_model()(array)
    if batched:
        return rh, rv
    return rh[0], rv[0]


def twiss_table(factors: Any = None, lattice: Lattice | None = None) -> dict[str, Any]:
    """Twiss functions of the uncoupled line at the exit of every element and implicit drift.

    The x-y coupling tilt (-0.105 rad of mbawh.412343) is dropped, vertical bends stay
    vertical, so the 2x2 blocks of the maps define beta, alpha and mu in each plane
    (MAD-X reference ``untilted_nominal_twiss``). Drifts are named ``drift_<k>`` in beam
    order, as MAD-X does.

    Returns
    -------
    dict
        ``name``, ``keyword`` (lists) and ``s``, ``betx``, ``alfx``, ``mux``, ``bety``,
        ``alfy``, ``muy`` (arrays); mu in units of 2 pi.
    """
    lattice = lattice or load_lattice()
    array, _ = validate_factors(factors)
    values = dict(lattice.variables)
    for name, f in zip(QUAD_VARIABLES, array[0]):
        values[name] *= f
    names, keywords, positions, maps = [], [], [], []
    current, s, n_drift = np.eye(4), 0.0, 0
    for element in lattice.elements:
        gap = element.s_entry - s
        if gap > POSITION_TOLERANCE:
            current = drift_map(gap) @ current
            names.append(f"drift_{n_drift}")
            keywords.append("drift")
            positions.append(element.s_entry)
            maps.append(current)
            n_drift += 1
        current = element_map(element, values, uncoupled=True) @ current
        s = element.s_exit
        names.append(element.name)
        keywords.append(element.kind)
        positions.append(s)
        maps.append(current)
    stacked = np.array(maps)
    t0 = lattice.initial_twiss
    tx = twiss_from_maps(stacked, t0["betx"], t0["alfx"], plane=0)
    ty = twiss_from_maps(stacked, t0["bety"], t0["alfy"], plane=1)
    return {"name": names, "keyword": keywords, "s": np.array(positions),
            "betx": tx["beta"], "alfx": tx["alpha"], "mux": tx["mu"],
            "bety": ty["beta"], "alfy": ty["alpha"], "muy": ty["mu"]}
