"""The ARES experimental-area segment AREASOLA1 -> AREABSCR1, tracked by Cheetah 0.8.

The segment is built in code from its published element lengths (metres, beam order):

    AREASOLA1 (marker) | drift 0.175 | AREAMQZM1 (quad 0.122) | drift 0.428 |
    AREAMQZM2 (quad 0.122) | drift 0.204 | AREAMCVM1 (vertical corrector 0.02) |
    drift 0.204 | AREAMQZM3 (quad 0.122) | drift 0.179 |
    AREAMCHM1 (horizontal corrector 0.02) | drift 0.450 | AREABSCR1 (screen)

Tracking uses a ``ParameterBeam`` (centroid and covariance, first-order maps), never a
screen image. Every tensor carries a leading batch dimension B: one call tracks B
episodes with different incoming beams, misalignments and magnet settings.

Conventions of Cheetah 0.8 relied on here (read from its source, checked by the tests):

* quadrupole: thick first-order map with geometric strength k1 [1/m^2] (independent of
  the beam energy); ``misalignment = (dx, dy)`` shifts the beam by (-dx, -dy) at the
  entrance and by (+dx, +dy) at the exit, i.e. the magnet sits at (dx, dy);
* corrector: a drift of its length followed by a thin kick ``px += angle``
  (``py`` for the vertical corrector), i.e. the kick acts at the exit face;
* screen: what it measures is the beam relative to the screen centre, ``mu - misalignment``
  (the convention of ``cheetah.Screen`` for a recorded beam); sigma is unchanged.

The beam energy enters only the longitudinal terms of these maps: in this first-order
model with geometric k1 it does not change the transverse beam on the screen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from maml_rl.families.ares_ea._cheetah import import_cheetah

# (name, kind, length [m]) in beam order.
LATTICE: tuple[tuple[str, str, float], ...] = (
    ("AREASOLA1", "marker", 0.0),
    ("drift_sola1_mqzm1", "drift", 0.175),
    ("AREAMQZM1", "quadrupole", 0.122),
    ("drift_mqzm1_mqzm2", "drift", 0.428),
    ("AREAMQZM2", "quadrupole", 0.122),
    ("drift_mqzm2_mcvm1", "drift", 0.204),
    ("AREAMCVM1", "vertical_corrector", 0.02),
    ("drift_mcvm1_mqzm3", "drift", 0.204),
    ("AREAMQZM3", "quadrupole", 0.122),
    ("drift_mqzm3_mchm1", "drift", 0.179),
    ("AREAMCHM1", "horizontal_corrector", 0.02),
    ("drift_mchm1_bscr1", "drift", 0.450),
    ("AREABSCR1", "screen", 0.0),
)
LENGTHS = {name: length for name, _, length in LATTICE}

# The five settings of the agent, in beam order: k1 [1/m^2] of the quadrupoles and the
# deflection angle [rad] of the correctors.
MAGNETS = ("AREAMQZM1", "AREAMQZM2", "AREAMCVM1", "AREAMQZM3", "AREAMCHM1")
QUADRUPOLES = ("AREAMQZM1", "AREAMQZM2", "AREAMQZM3")
K1_LIMIT = 72.0
ANGLE_LIMIT = 6.1782e-3
MAGNET_LIMITS = np.array([K1_LIMIT, K1_LIMIT, ANGLE_LIMIT, K1_LIMIT, ANGLE_LIMIT])

# Elements with a transverse misalignment (x, y) [m] in the task, in this order.
MISALIGNED = ("AREAMQZM1", "AREAMQZM2", "AREAMQZM3", "AREABSCR1")

# Incoming beam parameters of a task (units: eV, m, rad, m, rad, m, rad, m, rad, m, 1).
BEAM_PARAMETERS = ("energy", "mu_x", "mu_px", "mu_y", "mu_py", "sigma_x", "sigma_px", "sigma_y", "sigma_py",
                   "sigma_tau", "sigma_p")

# What the screen reports, in this order [m].
SCREEN_BEAM = ("mu_x", "sigma_x", "mu_y", "sigma_y")
SCREEN_RESOLUTION = (2448, 2040)           # pixels (x, y)
SCREEN_PIXEL_SIZE = (3.3198e-6, 2.4469e-6)  # m (x, y)
SCREEN_BINNING = 4
# Half the sensor's width and height [m]: the beam is on the screen while |mu| is below.
SCREEN_HALF_SIZE = np.array([SCREEN_RESOLUTION[0] * SCREEN_PIXEL_SIZE[0],
                             SCREEN_RESOLUTION[1] * SCREEN_PIXEL_SIZE[1]]) / 2


def build_segment(dtype: torch.dtype = torch.float64) -> Any:
    """The segment as a ``cheetah.Segment`` with all magnets off and no misalignment."""
    cheetah = import_cheetah()
    kinds = {"marker": lambda name, length: cheetah.Marker(name=name, dtype=dtype),
             "drift": lambda name, length: cheetah.Drift(length=torch.tensor(length, dtype=dtype), name=name,
                                                         dtype=dtype),
             "quadrupole": lambda name, length: cheetah.Quadrupole(length=torch.tensor(length, dtype=dtype),
                                                                   name=name, dtype=dtype),
             "vertical_corrector": lambda name, length: cheetah.VerticalCorrector(
                 length=torch.tensor(length, dtype=dtype), name=name, dtype=dtype),
             "horizontal_corrector": lambda name, length: cheetah.HorizontalCorrector(
                 length=torch.tensor(length, dtype=dtype), name=name, dtype=dtype),
             # Inactive: tracking skips it and no image is ever computed; its geometry is
             # kept so that ``segment.AREABSCR1`` describes the real camera.
             "screen": lambda name, length: cheetah.Screen(
                 resolution=SCREEN_RESOLUTION, pixel_size=torch.tensor(SCREEN_PIXEL_SIZE, dtype=dtype),
                 binning=SCREEN_BINNING, is_active=False, name=name, dtype=dtype)}
    return cheetah.Segment([kinds[kind](name, length) for name, kind, length in LATTICE], name="ARES_EA")


class AresSegment:
    """Batched, differentiable map (magnet settings, task) -> beam on the screen.

    Parameters
    ----------
    dtype
        Floating-point type of every tensor (float64 by default: the tests compare with
        an independent computation to ~1e-12).
    """

    def __init__(self, dtype: torch.dtype = torch.float64) -> None:
        self.cheetah = import_cheetah()
        self.dtype = dtype
        self.segment = build_segment(dtype)
        self._magnets = [getattr(self.segment, name) for name in MAGNETS]
        self._misaligned = [getattr(self.segment, name) for name in QUADRUPOLES]

    def _tensor(self, values: Any) -> torch.Tensor:
        if isinstance(values, torch.Tensor):
            return values.to(self.dtype)
        return torch.as_tensor(np.asarray(values, dtype=float), dtype=self.dtype)

    def incoming_beam(self, beam_parameters: Any) -> Any:
        """A batched ``cheetah.ParameterBeam`` from (B, 11) parameters (``BEAM_PARAMETERS`` order).

        The beam is uncorrelated: diagonal covariance diag(sigma^2) in (x, px, y, py, tau, p).
        """
        params = self._tensor(beam_parameters)
        if params.ndim != 2 or params.shape[1] != len(BEAM_PARAMETERS):
            raise ValueError(f"beam parameters must have shape (B, {len(BEAM_PARAMETERS)}), got {tuple(params.shape)}")
        columns = dict(zip(BEAM_PARAMETERS, params.unbind(-1)))
        return self.cheetah.ParameterBeam.from_parameters(**columns, dtype=self.dtype)

    def screen_beam(self, magnets: Any, beam: Any, misalignments: Any) -> torch.Tensor:
        """Track B beams and return what the screen sees.

        Parameters
        ----------
        magnets
            (B, 5) settings in ``MAGNETS`` order (k1 [1/m^2], angles [rad]); may require grad.
        beam
            A ``ParameterBeam`` of batch B (see ``incoming_beam``) or (B, 11) parameters.
        misalignments
            (B, 8) = (x, y) of ``MISALIGNED`` [m].

        Returns
        -------
        torch.Tensor
            (B, 4): (mu_x, sigma_x, mu_y, sigma_y) [m] relative to the screen centre.
        """
        magnets = self._tensor(magnets)
        misalignments = self._tensor(misalignments)
        if not isinstance(beam, self.cheetah.ParameterBeam):
            beam = self.incoming_beam(beam)
        batch = magnets.shape[0]
        if magnets.shape != (batch, len(MAGNETS)) or misalignments.shape != (batch, 2 * len(MISALIGNED)):
            raise ValueError(f"expected magnets (B, {len(MAGNETS)}) and misalignments (B, {2 * len(MISALIGNED)}), "
                             f"got {tuple(magnets.shape)} and {tuple(misalignments.shape)}")
        if beam.mu.shape[:-1] != (batch,):
            raise ValueError(f"the beam has batch shape {tuple(beam.mu.shape[:-1])}, the settings ({batch},)")
        for column, element in enumerate(self._magnets):
            # Cheetah caches transfer maps keyed by the attribute tensor's id; dropping the
            # cache of the elements we change makes the map follow the values, whatever ids
            # the allocator hands out.
            element.__dict__.pop("_cache", None)
            if element.name in QUADRUPOLES:
                element.k1 = magnets[:, column]
            else:
                element.angle = magnets[:, column]
        for index, element in enumerate(self._misaligned):
            element.misalignment = misalignments[:, 2 * index:2 * index + 2]
        out = self.segment.track(beam)
        screen = misalignments[:, 6:8]
        return torch.stack([out.mu_x - screen[:, 0], out.sigma_x, out.mu_y - screen[:, 1], out.sigma_y], dim=-1)

    def screen_beam_numpy(self, magnets: np.ndarray, beam: Any, misalignments: np.ndarray) -> np.ndarray:
        """``screen_beam`` without gradients, as a float64 array."""
        with torch.no_grad():
            return self.screen_beam(magnets, beam, misalignments).double().numpy()
