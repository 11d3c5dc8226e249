"""TT43 linear optics: element maps as mathematics, the line against MAD-X."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from maml_rl.envs.awake import QUAD_VARIABLES, response_matrices
from maml_rl.envs.lattice import LatticeError, load_lattice
from maml_rl.envs.optics import (SYMPLECTIC_FORM, CompiledLine, drift_map, edge_map, quadrupole_map,
                                 rbend_map, rotation_map, symplectic_inverse)
from maml_rl.envs.response import ResponseModel, twiss_table


def relative_frobenius(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def generator_block(k: float) -> np.ndarray:
    """d/ds (x, x') = [[0, 1], [-k, 0]] (x, x')."""
    return np.array([[0.0, 1.0], [-k, 0.0]])


@pytest.mark.parametrize("k1", [-31.7, -1.1, 0.0, 1e-9, 9.5, 26.9])
def test_quadrupole_map_is_the_exponential_of_hills_equation(k1: float) -> None:
    length = 0.0708
    m = quadrupole_map(k1, length)
    np.testing.assert_allclose(m[:2, :2], expm(length * generator_block(k1)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m[2:, 2:], expm(length * generator_block(-k1)), rtol=1e-12, atol=1e-14)
    assert np.all(m[:2, 2:] == 0) and np.all(m[2:, :2] == 0)


def test_quadrupole_map_is_vectorised() -> None:
    k = np.array([[-3.0, 2.0], [0.0, 7.0]])
    batch = quadrupole_map(k, 0.3)
    assert batch.shape == (2, 2, 4, 4)
    np.testing.assert_array_equal(batch[1, 1], quadrupole_map(7.0, 0.3))


def test_rbend_body_and_edges() -> None:
    angle, length, hgap, fint = -0.5670925, 0.1755, 0.035, 0.25
    h = angle / length
    # Without edges/fringe the x block is a sector bend: K = h^2, y is a drift.
    body_only = np.linalg.inv(edge_map(h, angle / 2, hgap, fint)) @ rbend_map(angle, length, hgap, fint) @ \
        np.linalg.inv(edge_map(h, angle / 2, hgap, fint))
    np.testing.assert_allclose(body_only[:2, :2], expm(length * generator_block(h * h)), atol=1e-13)
    np.testing.assert_allclose(body_only[2:, 2:], drift_map(length)[:2, :2], atol=1e-13)
    # Edge: R21 = h tan e, R43 = -h tan(e - psi), psi = 2 h hgap fint (1 + sin^2 e) / cos e.
    e = angle / 2
    psi = 2 * h * hgap * fint * (1 + np.sin(e) ** 2) / np.cos(e)
    edge = edge_map(h, e, hgap, fint)
    assert edge[1, 0] == pytest.approx(h * np.tan(e), rel=1e-14)
    assert edge[3, 2] == pytest.approx(-h * np.tan(e - psi), rel=1e-14)


def test_quarter_turn_tilt_swaps_planes() -> None:
    flat = rbend_map(-0.321465, 0.1755, 0.035, 0.09)
    vertical = rbend_map(-0.321465, 0.1755, 0.035, 0.09, tilt=np.pi / 2)
    np.testing.assert_allclose(vertical[2:, 2:], flat[:2, :2], atol=1e-15)
    np.testing.assert_allclose(vertical[:2, :2], flat[2:, 2:], atol=1e-15)
    np.testing.assert_allclose(rotation_map(0.3) @ rotation_map(-0.3), np.eye(4), atol=1e-15)


@pytest.mark.parametrize("m", [
    quadrupole_map(-12.0, 0.0708), quadrupole_map(20.0, 0.0708), drift_map(0.9),
    rbend_map(-0.5696, 0.1755, 0.035, 0.25, tilt=-0.105), rbend_map(0.3215, 0.1755, 0.035, 0.09, tilt=np.pi / 2),
])
def test_element_maps_are_symplectic(m: np.ndarray) -> None:
    np.testing.assert_allclose(m.T @ SYMPLECTIC_FORM @ m, SYMPLECTIC_FORM, atol=1e-12)
    np.testing.assert_allclose(symplectic_inverse(m) @ m, np.eye(4), atol=1e-12)


def test_lattice_file_transcribes_the_line(madx_reference: dict) -> None:
    lattice = load_lattice()
    assert tuple(lattice.variables) == QUAD_VARIABLES
    for name, value in madx_reference["quad_variables"].items():
        assert lattice.variables[name] == pytest.approx(value, rel=1e-14)
    assert len(lattice.names_of("monitor")) == 11 and len(lattice.names_of("kicker")) == 11
    model = ResponseModel()
    assert list(model.monitors) == madx_reference["monitors"]
    assert list(model.kickers) == madx_reference["kickers"]
    assert lattice.elements[-1].name == "plasma_merge"


def test_response_matrices_match_madx_for_every_case(madx_reference: dict) -> None:
    cases = madx_reference["cases"]
    assert len(cases) == 12 and cases[0]["factors"] is None
    worst = 0.0
    for case in cases:
        rh, rv = response_matrices(case["factors"])
        for mine, ref in ((rh, case["Rh"]), (rv, case["Rv"])):
            error = relative_frobenius(mine, np.array(ref))
            assert error <= 1e-6
            worst = max(worst, error)
    assert worst < 1e-12  # the model is exact; anything larger means a changed element


def test_batched_response_equals_single_cases(madx_reference: dict) -> None:
    cases = [c for c in madx_reference["cases"] if c["factors"]]
    factors = np.array([[c["factors"][v] for v in QUAD_VARIABLES] for c in cases])
    rh, rv = response_matrices(factors)
    assert rh.shape == rv.shape == (len(cases), 10, 10)
    for i, case in enumerate(cases):
        single = response_matrices(case["factors"])
        np.testing.assert_allclose(rh[i], single[0], rtol=0, atol=1e-15)
        np.testing.assert_allclose(rv[i], single[1], rtol=0, atol=1e-15)


def test_full_transfer_map_matches_madx_including_coupling(madx_reference: dict) -> None:
    lattice = load_lattice()
    line = CompiledLine(lattice, ["plasma_merge"])
    values = np.array([[lattice.variables[v] for v in line.variable_names]])
    mine = line.maps(values)[0, 0]
    reference = np.array(madx_reference["nominal_map_to_plasma_merge"])
    np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-12)
    assert abs(reference[0, 2]) > 0.1  # the tilted bend really couples x and y


def test_uncoupled_twiss_matches_madx_at_every_element(madx_reference: dict) -> None:
    reference = [(k, v) for k, v in madx_reference["untilted_nominal_twiss"].items() if k != "#s"]
    table = twiss_table()
    assert len(table["name"]) == len(reference)
    for i, (name, row) in enumerate(reference):
        assert table["name"][i] == name.split("[")[0]
        assert table["s"][i] == pytest.approx(row["s"], abs=1e-9)
        for column in ("betx", "alfx", "mux", "bety", "alfy", "muy"):
            value, expected = table[column][i], row[column]
            if abs(expected) < 1e-12:  # alpha = 0 and mu = 0 at the start
                assert abs(value) < 1e-12
            else:
                assert value == pytest.approx(expected, rel=1e-6), (name, column)


def test_uncoupled_response_equals_twiss_formula(madx_reference: dict) -> None:
    rh, rv = ResponseModel(uncoupled=True)(np.ones((1, 10)))
    np.testing.assert_allclose(rh[0], madx_reference["untilted_nominal"]["Rh"], atol=1e-12)
    np.testing.assert_allclose(rv[0], madx_reference["untilted_nominal"]["Rv"], atol=1e-12)
    table = twiss_table()
    model = ResponseModel(uncoupled=True)
    idx = {n: i for i, n in enumerate(table["name"])}
    mon = [idx[m] for m in model.monitors]
    kick = [idx[k] for k in model.kickers]
    for plane, r in (("x", rh[0]), ("y", rv[0])):
        beta, mu = table[f"bet{plane}"], table[f"mu{plane}"]
        phase = 2 * np.pi * np.subtract.outer(mu[mon], mu[kick])
        formula = 0.5 * np.sqrt(np.outer(beta[mon], beta[kick])) * np.sin(phase)
        np.testing.assert_allclose(r, formula * model.downstream, atol=1e-11)


def test_response_api_and_errors() -> None:
    rh, rv = response_matrices()
    assert rh.shape == rv.shape == (10, 10) and rh.dtype == np.float64
    assert np.all(np.triu(rh, 1) == 0) and np.all(np.diag(rh) != 0)  # monitor i+1 follows kicker i
    one = response_matrices({"kqf430118": 1.2})
    row = np.ones(10)
    row[QUAD_VARIABLES.index("kqf430118")] = 1.2
    np.testing.assert_array_equal(one[0], response_matrices(row)[0])
    assert not np.allclose(one[0], rh)
    batch = response_matrices(np.ones((3, 10)))
    assert batch[0].shape == (3, 10, 10)
    np.testing.assert_allclose(batch[0][2], rh, atol=0)
    with pytest.raises(ValueError, match="unknown quadrupole variable 'kqf999'"):
        response_matrices({"kqf999": 1.0})
    with pytest.raises(ValueError, match="shape"):
        response_matrices(np.ones((4, 9)))
    with pytest.raises(ValueError, match="finite"):
        response_matrices({"kqd430031": float("nan")})
    with pytest.raises(ValueError, match="positive"):
        response_matrices(np.zeros(10))
    with pytest.raises(ValueError, match="positive"):
        response_matrices({"kqd430031": -1.0})


def test_lattice_errors(tmp_path) -> None:
    with pytest.raises(LatticeError, match="not found"):
        load_lattice(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariables: {k: {value: 1.0}}\ninitial_twiss: {betx: 1, alfx: 0, bety: 1, alfy: 0}\n"
                   "elements:\n  - {name: q, type: quadrupole, at: 1.0, length: 0.1, k1: nope}\n")
    with pytest.raises(LatticeError, match="unknown variable"):
        load_lattice(bad)
    bad.write_text("name: x\nvariables: {k: {value: 1.0}}\ninitial_twiss: {betx: 1, alfx: 0, bety: 1, alfy: 0}\n"
                   "elements:\n  - {name: a, type: kicker, at: 1.0, length: 0.5}\n"
                   "  - {name: b, type: kicker, at: 1.1, length: 0.5}\n")
    with pytest.raises(LatticeError, match="overlap"):
        load_lattice(bad)
