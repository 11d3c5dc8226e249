"""ARES-EA physics: Cheetah's tracking against an independent first-order computation.

The reference below is written from the textbook maps, not from Cheetah: per plane a
drift [[1, L], [0, 1]], a thick quadrupole [[cos(phi), sin(phi)/w], [-w sin(phi), cos(phi)]]
with w = sqrt(|k|), phi = w L (cosh/sinh with the signs of a defocusing plane), a corrector
as a drift followed by a thin kick at its exit face, a misaligned element as a shift of
the beam by -d into and +d out of the element, and the screen reporting mu - d_screen.
The centroid moves affinely, the covariance as M S M^T.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maml_rl.families.ares_ea.segment import (LATTICE, MAGNET_LIMITS, MAGNETS, MISALIGNED, AresSegment,
                                              build_segment)
from maml_rl.families.ares_ea.tasks import sample_tasks, task_arrays


def plane_map(kind: str, length: float, k1: float) -> np.ndarray:
    """2x2 first-order map of one element in a plane where the focusing strength is k1."""
    if kind != "quadrupole" or k1 == 0.0:
        return np.array([[1.0, length], [0.0, 1.0]])
    w = np.sqrt(abs(k1))
    phi = w * length
    if k1 > 0:
        return np.array([[np.cos(phi), np.sin(phi) / w], [-w * np.sin(phi), np.cos(phi)]])
    return np.array([[np.cosh(phi), np.sinh(phi) / w], [w * np.sinh(phi), np.cosh(phi)]])


def reference_screen_beam(magnets: np.ndarray, beam: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent tracking of one beam: (mu (4,), cov (4, 4)) in (x, px, y, py) on the screen
    (screen coordinates)."""
    setting = dict(zip(MAGNETS, magnets))
    offset = {name: shifts[2 * i:2 * i + 2] for i, name in enumerate(MISALIGNED)}
    (_, mu_x, mu_px, mu_y, mu_py, s_x, s_px, s_y, s_py) = beam[:9]
    mu = np.array([mu_x, mu_px, mu_y, mu_py])
    cov = np.diag([s_x ** 2, s_px ** 2, s_y ** 2, s_py ** 2])
    for name, kind, length in LATTICE:
        k1 = setting.get(name, 0.0) if kind == "quadrupole" else 0.0
        m = np.zeros((4, 4))
        m[:2, :2] = plane_map(kind, length, k1)       # x focuses for k1 > 0
        m[2:, 2:] = plane_map(kind, length, -k1)      # y defocuses for k1 > 0
        d = np.zeros(4)
        if kind == "quadrupole":
            d[[0, 2]] = offset[name]
        mu = m @ (mu - d) + d
        cov = m @ cov @ m.T
        if kind == "horizontal_corrector":
            mu[1] += setting[name]
        if kind == "vertical_corrector":
            mu[3] += setting[name]
    mu[[0, 2]] -= offset["AREABSCR1"]
    return mu, cov


@pytest.fixture(scope="module")
def segment() -> AresSegment:
    return AresSegment()


def test_lattice_is_the_published_one() -> None:
    lengths = [length for _, _, length in LATTICE]
    assert sum(lengths) == pytest.approx(2.046, abs=1e-12)
    seg = build_segment()
    assert [e.name for e in seg.elements] == [name for name, _, _ in LATTICE]
    assert [float(e.length) for e in seg.elements] == pytest.approx(lengths, abs=1e-15)
    assert type(seg.AREAMCVM1).__name__ == "VerticalCorrector" and type(seg.AREAMCHM1).__name__ == "HorizontalCorrector"
    assert seg.AREABSCR1.resolution == (2448, 2040) and not seg.AREABSCR1.is_active


def test_cheetah_matches_independent_first_order_tracking(segment: AresSegment) -> None:
    """Random tasks x random settings (both quadrupole signs, full range), one batched call."""
    rng = np.random.default_rng(11)
    n = 48
    beams, shifts = task_arrays(sample_tasks(rng, n))
    magnets = rng.uniform(-1, 1, (n, 5)) * MAGNET_LIMITS
    magnets[0] = 0.0                       # all magnets off: pure drift
    got = segment.screen_beam_numpy(magnets, beams, shifts)
    for i in range(n):
        mu, cov = reference_screen_beam(magnets[i], beams[i], shifts[i])
        expected = [mu[0], np.sqrt(cov[0, 0]), mu[2], np.sqrt(cov[2, 2])]
        np.testing.assert_allclose(got[i], expected, rtol=1e-10, atol=1e-15)


def test_full_transverse_state_matches(segment: AresSegment) -> None:
    """Centroid and 4x4 covariance (angles and correlations too), through Cheetah's Segment."""
    rng = np.random.default_rng(5)
    beams, shifts = task_arrays(sample_tasks(rng, 6))
    magnets = rng.uniform(-1, 1, (6, 5)) * MAGNET_LIMITS
    segment.screen_beam(magnets, beams, shifts)  # sets the elements
    out = segment.segment.track(segment.incoming_beam(beams))
    for i in range(6):
        mu, cov = reference_screen_beam(magnets[i], beams[i], np.r_[shifts[i, :6], 0.0, 0.0])
        np.testing.assert_allclose(out.mu[i, :4].numpy(), mu, rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(out.cov[i, :4, :4].numpy(), cov, rtol=1e-9, atol=1e-20)


def _single(segment: AresSegment, magnets: dict, shifts: dict | None = None, mu_x: float = 0.0) -> np.ndarray:
    setting = np.array([magnets.get(name, 0.0) for name in MAGNETS])
    offsets = np.zeros(8)
    for i, name in enumerate(MISALIGNED):
        offsets[2 * i:2 * i + 2] = (shifts or {}).get(name, (0.0, 0.0))
    beam = np.array([[1e8, mu_x, 0, 0, 0, 1e-4, 1e-5, 1e-4, 1e-5, 1e-5, 1e-4]])
    return segment.screen_beam_numpy(setting[None], beam, offsets[None])[0]


def test_corrector_signs_by_hand(segment: AresSegment) -> None:
    theta = 1e-3
    base = _single(segment, {})
    # A positive horizontal kick at AREAMCHM1 (kick at its exit face) moves mu_x by +theta x 0.450 m.
    moved = _single(segment, {"AREAMCHM1": theta})
    assert moved[0] - base[0] == pytest.approx(theta * 0.450, rel=1e-12)
    assert moved[2] == pytest.approx(base[2], abs=1e-18)
    # A positive vertical kick at AREAMCVM1 with the quadrupoles off: drift 0.204 + 0.122 + 0.179 + 0.02 + 0.450.
    moved = _single(segment, {"AREAMCVM1": theta})
    assert moved[2] - base[2] == pytest.approx(theta * 0.975, rel=1e-12)
    assert moved[0] == pytest.approx(base[0], abs=1e-18)


def test_quadrupole_misalignment_sign_by_hand(segment: AresSegment) -> None:
    """A focusing quadrupole (k1 > 0 focuses x) displaced by +dx pulls the beam towards +x:
    thin-lens kick +k1 L dx, so mu_x on the screen moves by ~ k1 L dx (L/2 + D), D = distance
    from the magnet's exit to the screen; in y the same magnet defocuses and pushes away."""
    k1, dx, length, drift = 2.0, 3e-4, 0.122, 0.179 + 0.02 + 0.450
    base = _single(segment, {"AREAMQZM3": k1})
    shifted = _single(segment, {"AREAMQZM3": k1}, {"AREAMQZM3": (dx, 0.0)})
    thin = k1 * length * dx * (length / 2 + drift)
    assert shifted[0] - base[0] == pytest.approx(thin, rel=0.01)
    assert shifted[0] - base[0] > 0
    # Exact thick-lens value: x_out = dx (1 - cos phi), px_out = dx w sin phi.
    w = np.sqrt(k1)
    phi = w * length
    assert shifted[0] - base[0] == pytest.approx(dx * (1 - np.cos(phi)) + drift * dx * w * np.sin(phi), rel=1e-10)
    # Vertical displacement of the same magnet: defocusing plane, the beam moves to -y.
    shifted_y = _single(segment, {"AREAMQZM3": k1}, {"AREAMQZM3": (0.0, dx)})
    assert shifted_y[2] - base[2] == pytest.approx(-k1 * length * dx * (length / 2 + drift), rel=0.01)
    # With the magnet off, a displacement does nothing.
    assert _single(segment, {}, {"AREAMQZM3": (dx, dx)}) == pytest.approx(_single(segment, {}), abs=1e-18)


def test_screen_misalignment_is_cheetahs_screen_convention(segment: AresSegment) -> None:
    """A screen displaced by +d reports mu - d, as cheetah.Screen records a beam."""
    import cheetah

    d = (2e-4, -1e-4)
    ours = _single(segment, {"AREAMCHM1": 1e-3}, {"AREABSCR1": d}, mu_x=1e-4)
    plain = _single(segment, {"AREAMCHM1": 1e-3}, mu_x=1e-4)
    assert ours[0] == pytest.approx(plain[0] - d[0], rel=1e-12)
    assert ours[2] == pytest.approx(plain[2] - d[1], rel=1e-12)
    # Cheetah's own screen, active, on an unbatched beam.
    seg = build_segment()
    seg.AREAMCHM1.angle = torch.tensor(1e-3, dtype=torch.float64)
    seg.AREABSCR1.misalignment = torch.tensor(d, dtype=torch.float64)
    seg.AREABSCR1.is_active = True
    beam = cheetah.ParameterBeam.from_parameters(mu_x=torch.tensor(1e-4, dtype=torch.float64),
                                                 sigma_x=torch.tensor(1e-4, dtype=torch.float64),
                                                 sigma_px=torch.tensor(1e-5, dtype=torch.float64),
                                                 sigma_y=torch.tensor(1e-4, dtype=torch.float64),
                                                 sigma_py=torch.tensor(1e-5, dtype=torch.float64),
                                                 energy=torch.tensor(1e8, dtype=torch.float64), dtype=torch.float64)
    seg.track(beam)
    read = seg.AREABSCR1.get_read_beam()
    assert float(read.mu_x) == pytest.approx(ours[0], rel=1e-12)
    assert float(read.mu_y) == pytest.approx(ours[2], rel=1e-12)


def test_energy_does_not_change_the_transverse_beam(segment: AresSegment) -> None:
    """Geometric k1 and angles: the energy enters only longitudinal terms of the maps."""
    rng = np.random.default_rng(2)
    beams, shifts = task_arrays(sample_tasks(rng, 1))
    magnets = rng.uniform(-1, 1, (1, 5)) * MAGNET_LIMITS
    other = beams.copy()
    other[0, 0] *= 1.7
    np.testing.assert_allclose(segment.screen_beam_numpy(magnets, other, shifts),
                               segment.screen_beam_numpy(magnets, beams, shifts), rtol=1e-13)


def test_batched_call_equals_separate_calls(segment: AresSegment) -> None:
    rng = np.random.default_rng(9)
    beams, shifts = task_arrays(sample_tasks(rng, 8))
    magnets = rng.uniform(-1, 1, (8, 5)) * MAGNET_LIMITS
    together = segment.screen_beam_numpy(magnets, beams, shifts)
    for i in range(8):
        np.testing.assert_allclose(segment.screen_beam_numpy(magnets[i:i + 1], beams[i:i + 1], shifts[i:i + 1])[0],
                                   together[i], rtol=1e-13, atol=1e-18)


def test_settings_change_between_calls_are_seen(segment: AresSegment) -> None:
    """No stale transfer map: alternating settings give alternating results."""
    beams, shifts = task_arrays(sample_tasks(np.random.default_rng(4), 1))
    a, b = np.full((1, 5), 0.3) * MAGNET_LIMITS, np.full((1, 5), -0.2) * MAGNET_LIMITS
    first = segment.screen_beam_numpy(a, beams, shifts)
    second = segment.screen_beam_numpy(b, beams, shifts)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(segment.screen_beam_numpy(a, beams, shifts), first)


def test_gradient_through_cheetah_matches_finite_differences(segment: AresSegment) -> None:
    beams, shifts = task_arrays(sample_tasks(np.random.default_rng(3), 1))
    incoming = segment.incoming_beam(beams)
    limits = torch.as_tensor(MAGNET_LIMITS)
    x = torch.tensor([[0.2, -0.3, 0.1, 0.25, -0.15]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: segment.screen_beam(v * limits, incoming, shifts) * 1e3, (x,),
                                    eps=1e-6, atol=1e-7, rtol=1e-5)


def test_shape_errors_are_clear(segment: AresSegment) -> None:
    beams, shifts = task_arrays(sample_tasks(np.random.default_rng(0), 2))
    with pytest.raises(ValueError, match="magnets"):
        segment.screen_beam(np.zeros((2, 4)), beams, shifts)
    with pytest.raises(ValueError, match="beam parameters"):
        segment.incoming_beam(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="batch shape"):
        segment.screen_beam(np.zeros((3, 5)), segment.incoming_beam(beams), np.zeros((3, 8)))
