"""Seed spread (maml_rl.seed_spread): median and range over result files of several seeds."""

from __future__ import annotations

import json

import pytest

from maml_rl import seed_spread


def _summary(fraction: float, ratio: float) -> dict:
    return {"tasks": 200, "fraction_ge_95": fraction, "fraction_100": fraction, "worst_success": fraction / 2,
            "ratio_benchmark_median": ratio, "ratio_benchmark_p90": 2 * ratio, "ratio_benchmark_max": 3 * ratio}


def _run_maml_file(path, fraction: float, ratio: float):
    path.write_text(json.dumps({"tasks": [], "summary": {"policy": _summary(fraction, ratio)}}))
    return path


def test_cells_are_median_and_range_over_seeds(tmp_path, capsys) -> None:
    files = [_run_maml_file(tmp_path / f"{i}.json", f, r) for i, (f, r) in enumerate([(0.9, 0.5), (1.0, 0.7),
                                                                                      (0.95, 0.6)])]
    assert seed_spread.main([str(f) for f in files]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| policy")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "95.0 % (90.0-100.0)"
    assert cells[3] == "47.5 % (45.0-50.0)"
    assert cells[4] == "0.60 (0.50-0.70)" and cells[6] == "1.80 (1.50-2.10)"


def test_test_py_summaries_pick_the_requested_batch(tmp_path) -> None:
    path = tmp_path / "summary.jsonl"
    rows = [{"batch": 0, "interactions": 0, "policy": _summary(0.9, 0.8)},
            {"batch": 5, "interactions": 10, "policy": _summary(1.0, 0.5)}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert seed_spread.read_result(path)["summary"]["policy"]["fraction_100"] == 1.0
    assert seed_spread.read_result(path, 0)["summary"]["policy"]["fraction_100"] == 0.9
    with pytest.raises(seed_spread.SpreadError, match="no evaluation after batch 3"):
        seed_spread.read_result(path, 3)


def test_per_task_results_and_bad_files(tmp_path, capsys) -> None:
    def write(name, success):
        rows = [{"task_id": t, "policy_success_rate": success, "length_ratio_benchmark": 0.5 + t} for t in (0, 1)]
        (tmp_path / name).write_text(json.dumps({"tasks": rows, "summary": None}))
        return str(tmp_path / name)

    assert seed_spread.main([write("a.json", 1.0), write("b.json", 0.8)]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 90.0 % (80.0-100.0) | 1.50 (1.50-1.50) |" in out
    (tmp_path / "bad.json").write_text("{not json")
    assert seed_spread.main([str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bad.json" in err[0]
    assert seed_spread.main([write("c.json", 1.0), str(_run_maml_file(tmp_path / "d.json", 1.0, 1.0))]) == 2
    assert "mix of" in capsys.readouterr().err
