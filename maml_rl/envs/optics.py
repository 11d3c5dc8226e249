"""First-order (linear) transport on the design orbit, vectorised over quadrupole settings.

Coordinates are (x, x', y, y'), on momentum. Element maps follow MAD-X's linear model:

* drift of length L:  [[1, L], [0, 1]] in both planes;
* thick quadrupole, K = k1: focusing plane [[cos phi, sin phi / sqrt K], [-sqrt K sin phi, cos phi]],
  phi = sqrt|K| L, hyperbolic functions in the defocusing plane;
* rectangular bend (RBEND, arc length L, h = angle / L, k0 = h): sector body (x: K = h^2,
  y: drift) between two edges with angle e = angle/2 (+ e1/e2) and MAD-X's linear fringe
  terms R21 = h tan e (bend plane), R43 = -h tan(e - psi) with
  psi = 2 h hgap fint (1 + sin^2 e) / cos e;
* tilt t: M -> Rot(-t) M Rot(t), Rot(t) mapping lab coordinates into the element frame.

Only quadrupole maps depend on the task, so the line is compiled once into constant 4x4
products interleaved with quadrupoles; a batch of N settings then costs about
(number of quadrupoles + taps) batched 4x4 products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from maml_rl.envs.lattice import POSITION_TOLERANCE, Element, Lattice

_J2 = np.array([[0.0, 1.0], [-1.0, 0.0]])
SYMPLECTIC_FORM = np.block([[_J2, np.zeros((2, 2))], [np.zeros((2, 2)), _J2]])


def drift_map(length: float) -> np.ndarray:
    """4x4 map of a field-free drift."""
    m = np.eye(4)
    m[0, 1] = m[2, 3] = length
    return m


def _focusing_block(k: np.ndarray, length: float) -> np.ndarray:
    """2x2 blocks (..., 2, 2) of x'' = -k x over ``length`` for any sign of k (k = 0: drift)."""
    k = np.asarray(k, dtype=float)
    root = np.sqrt(np.abs(k))
    phi = root * length
    focusing = k > 0
    # Focusing: trigonometric; defocusing: hyperbolic; k = 0 is the limit of either.
    cos_like = np.where(focusing, np.cos(phi), np.cosh(phi))
    sin_like = np.where(focusing, np.sin(phi), np.sinh(phi))
    out = np.empty(k.shape + (2, 2))
    out[..., 0, 0] = cos_like
    out[..., 0, 1] = np.where(k == 0, length, sin_like / np.where(k == 0, 1.0, root))
    out[..., 1, 0] = np.where(focusing, -root, root) * sin_like
    out[..., 1, 1] = cos_like
    return out


def quadrupole_map(k1: np.ndarray | float, length: float) -> np.ndarray:
    """4x4 maps (..., 4, 4) of thick quadrupoles with gradients ``k1`` [m^-2] (x focusing if k1 > 0)."""
    k1 = np.asarray(k1, dtype=float)
    out = np.zeros(k1.shape + (4, 4))
    out[..., 0:2, 0:2] = _focusing_block(k1, length)
    out[..., 2:4, 2:4] = _focusing_block(-k1, length)
    return out


def rotation_map(tilt: float) -> np.ndarray:
    """Map from lab coordinates to the frame of an element rotated by ``tilt`` about s."""
    c, s = np.cos(tilt), np.sin(tilt)
    return np.array([[c, 0, s, 0], [0, c, 0, s], [-s, 0, c, 0], [0, -s, 0, c]], dtype=float)


def edge_map(h: float, edge: float, hgap: float, fint: float) -> np.ndarray:
    """Linear map of a bend edge (MAD-X ``tmfrng`` to first order), bend plane x."""
    psi = 2.0 * h * hgap * fint * (1.0 + np.sin(edge) ** 2) / np.cos(edge)
    m = np.eye(4)
    m[1, 0] = h * np.tan(edge)
    m[3, 2] = -h * np.tan(edge - psi)
    return m


def rbend_map(angle: float, length: float, hgap: float = 0.0, fint: float = 0.0,
              e1: float = 0.0, e2: float = 0.0, tilt: float = 0.0) -> np.ndarray:
    """4x4 map of a rectangular bend on its design orbit (k0 = angle / length)."""
    h = angle / length
    body = np.eye(4)
    body[0:2, 0:2] = _focusing_block(np.array(h * h), length)
    body[2:4, 2:4] = drift_map(length)[0:2, 0:2]
    half = 0.5 * angle
    local = edge_map(h, half + e2, hgap, fint) @ body @ edge_map(h, half + e1, hgap, fint)
    if tilt == 0.0:
        return local
    rot = rotation_map(tilt)
    return rot.T @ local @ rot


def symplectic_inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of symplectic 4x4 maps (..., 4, 4): M^-1 = -J M^T J (exact, no solve)."""
    return -SYMPLECTIC_FORM @ np.swapaxes(m, -1, -2) @ SYMPLECTIC_FORM


def is_plane_swap(tilt: float) -> bool:
    """Whether a tilt is a multiple of pi/2: it relabels the planes without coupling them."""
    quarter_turns = tilt / (0.5 * np.pi)
    return bool(abs(quarter_turns - round(quarter_turns)) < 1e-12)


def element_map(element: Element, variables: dict[str, float], uncoupled: bool = False) -> np.ndarray:
    """Map of one element with the given variable values (quadrupoles not batched here).

    ``uncoupled=True`` drops tilts that couple x and y (those not a multiple of pi/2), which
    gives the uncoupled line of the MAD-X reference (vertical bends stay vertical).
    """
    if element.kind == "quadrupole":
        return quadrupole_map(variables[element.k1_variable], element.length)
    if element.kind == "rbend":
        tilt = 0.0 if uncoupled and not is_plane_swap(element.tilt) else element.tilt
        return rbend_map(element.angle, element.length, element.hgap, element.fint,
                         element.e1, element.e2, tilt)
    return drift_map(element.length)


@dataclass(frozen=True)
class _Quad:
    variable_index: int
    length: float


class CompiledLine:
    """A lattice reduced to constant maps and quadrupoles, with taps where maps are recorded.

    Parameters
    ----------
    lattice
        The line.
    taps
        Element names; the cumulative map from the start to the *exit* of each is recorded
        (for zero-length monitors exit = position).
    uncoupled
        Drop coupling tilts (see ``element_map``).
    """

    def __init__(self, lattice: Lattice, taps: Sequence[str], uncoupled: bool = False) -> None:
        self.lattice = lattice
        self.variable_names = tuple(lattice.variables)
        self.taps = tuple(taps)
        wanted = set(self.taps)
        unknown = wanted - {e.name for e in lattice.elements}
        if unknown:
            raise ValueError(f"unknown tap elements: {sorted(unknown)}")
        steps: list[np.ndarray | _Quad | str] = []
        s = 0.0
        for element in lattice.elements:
            gap = element.s_entry - s
            if gap > POSITION_TOLERANCE:
                steps.append(drift_map(gap))
            if element.kind == "quadrupole":
                steps.append(_Quad(self.variable_names.index(element.k1_variable), element.length))
            else:
                steps.append(element_map(element, lattice.variables, uncoupled))
            if element.name in wanted:
                steps.append(element.name)
            s = element.s_exit
        self._program = self._merge_constants(steps)

    @staticmethod
    def _merge_constants(steps: Iterable[np.ndarray | _Quad | str]) -> list[np.ndarray | _Quad | str]:
        program: list[np.ndarray | _Quad | str] = []
        for step in steps:
            if isinstance(step, np.ndarray) and program and isinstance(program[-1], np.ndarray):
                program[-1] = step @ program[-1]
            else:
                program.append(step)
        return program

    def maps(self, variable_values: np.ndarray) -> np.ndarray:
        """Cumulative maps at the taps.

        Parameters
        ----------
        variable_values
            (N, V) strength values, columns in ``variable_names`` order.

        Returns
        -------
        ndarray
            (N, len(taps), 4, 4) maps from the start of the line to each tap.
        """
        values = np.asarray(variable_values, dtype=float)
        n = values.shape[0]
        out = np.empty((n, len(self.taps), 4, 4))
        index = {name: i for i, name in enumerate(self.taps)}
        current = np.broadcast_to(np.eye(4), (n, 4, 4))
        for step in self._program:
            if isinstance(step, str):
                out[:, index[step]] = current
            elif isinstance(step, _Quad):
                current = quadrupole_map(values[:, step.variable_index], step.length) @ current
            else:
                current = step @ current
        return out


def twiss_from_maps(maps: np.ndarray, beta0: float, alpha0: float, plane: int) -> dict[str, np.ndarray]:
    """Propagate (beta, alpha, mu) with the 2x2 block of ``plane`` (0: x, 1: y) of cumulative maps.

    beta = (M11 beta0 - M12 alpha0)^2 / beta0 + M12^2 / beta0,
    alpha = -[(M11 beta0 - M12 alpha0)(M21 beta0 - M22 alpha0) + M12 M22] / beta0,
    mu = atan2(M12, M11 beta0 - M12 alpha0) / (2 pi), unwrapped along the line (MAD-X units).
    """
    i = 2 * plane
    m11, m12 = maps[..., i, i], maps[..., i, i + 1]
    m21, m22 = maps[..., i + 1, i], maps[..., i + 1, i + 1]
    a = m11 * beta0 - m12 * alpha0
    b = m21 * beta0 - m22 * alpha0
    beta = (a * a + m12 * m12) / beta0
    alpha = -(a * b + m12 * m22) / beta0
    phase = np.arctan2(m12, a)
    # Phase advance is monotonic: unwrap jumps of the principal value along the line.
    mu = np.unwrap(phase, axis=-1) / (2 * np.pi)
    return {"beta": beta, "alpha": alpha, "mu": mu}
