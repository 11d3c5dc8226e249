"""The comparison's method registry: every single-task agent and model-based method runs
through ``python -m maml_rl.compare`` on tiny budgets, evaluations come after updates,
episodes and interactions are counted, the noise option reaches every environment, the
tables and figures show every method, and bad method names are one ``error:`` line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maml_rl import compare, compare_report
from maml_rl.agents import default_settings, train_agent
from maml_rl.baselines.counting import EpisodeCounter
from maml_rl.compare_report import LABELS, REGISTRY
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.tasks import load_evaluation_tasks
from test_ppo import one_error_line, run

NEW_METHODS = ("td3", "sac", "ddpg", "naf", "per-naf", "rm-id", "gp-mpc", "dyna")
BUDGETS = {"td3": 120, "sac": 120, "ddpg": 120, "naf": 120, "per-naf": 120, "rm-id": 20, "gp-mpc": 10, "dyna": 60}
PERIODS = {"td3": 60, "sac": 60, "ddpg": 60, "naf": 60, "per-naf": 60, "rm-id": 10, "gp-mpc": 5, "dyna": 30}


def options(methods, tiny_config: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(tiny_config), "--task-ids", "0", "--methods", *methods,
            "--budget", *(f"{m}={BUDGETS[m]}" for m in methods),
            "--eval-every", *(f"{m}={PERIODS[m]}" for m in methods),
            "--eval-episodes", "5", "--no-progress", "--output-folder", str(out), *extra]


@pytest.fixture(scope="module")
def figures(monkeypatch_module):
    """The legend labels of every figure the comparison saves (by file name)."""
    seen: dict[str, list[str]] = {}
    original = compare_report.save_figure

    def capture(fig, path, *args, **kwargs):
        seen[Path(path).name] = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        return original(fig, path, *args, **kwargs)

    monkeypatch_module.setattr(compare_report, "save_figure", capture)
    return seen


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def every_method_run(tiny_config, tmp_path_factory, figures):
    """All new methods, one task, two seeds, noise 0 (one in-process comparison)."""
    out = tmp_path_factory.mktemp("all")
    assert compare.main(options(NEW_METHODS, tiny_config, out, "--seeds", "3", "4")) == 0
    folder = out / "comparison" / "compare"
    return folder, json.loads((folder / "comparison.json").read_text())


def test_every_new_method_runs_end_to_end_with_curves_on_its_own_schedule(every_method_run) -> None:
    folder, data = every_method_run
    assert data["methods"] == list(NEW_METHODS) and data["noise_sigma"] == 0.0
    for name in NEW_METHODS:
        key, budget, every = REGISTRY[name].key, BUDGETS[name], PERIODS[name]
        assert data["budgets"]["per_method"][name] == {"budget": budget, "eval_every": every}
        for seed in ("3", "4"):
            curve = data["runs"][key]["0"][seed]
            assert curve["interactions"] == list(range(0, budget + 1, every)), name
            episodes = curve["episodes"]
            assert episodes[0] == 0 and all(b >= a for a, b in zip(episodes, episodes[1:])), name
            # an episode lasts at most max_time = 15 steps, and at least one step
            assert all(-(-n // 15) <= e <= n for n, e in zip(curve["interactions"], episodes)), name
            assert len(curve["mean_return"]) == len(curve["mean_length"]) == len(curve["interactions"])
        assert data["summary"][key]["0"]["seeds"] == 2
        assert data["summary_episodes"][key]["0"]["seeds"] == 2
        assert len(data["run_wall_times"][key]) == 2


def test_ten_probes_identify_the_response_so_rm_id_steers_exactly_as_the_benchmark(every_method_run) -> None:
    _, data = every_method_run
    for seed in ("3", "4"):
        curve = data["runs"]["rm_id"]["0"][seed]
        at_ten = curve["interactions"].index(10)
        # the inverse law on an exact estimate is the benchmark, on the same states
        assert curve["length_ratio"][at_ten] == pytest.approx(1.0, abs=1e-12)
        assert curve["episodes"][at_ten] == 1  # probing from the first episode's initial state
        assert curve["length_ratio"][0] > 1.0  # zero actions before R is determined


def test_tables_and_figures_show_every_method(every_method_run, figures) -> None:
    folder, _ = every_method_run
    report = (folder / "comparison.md").read_text()
    legacy_header, per_method = report.split("\n\n")[1].splitlines()[0], report.split("\n\n")[-1]
    for name in NEW_METHODS:
        label = LABELS[REGISTRY[name].key]
        assert label in legacy_header
        rows = [line for line in per_method.splitlines() if line.startswith(f"| {label} |")]
        assert len(rows) == 1 and rows[0].count("/2") == 2, name  # interactions and episodes, k/2 seeds
        for figure in ("comparison.png", "learning_curves.png"):
            assert label in figures[figure], (name, figure)
    assert {"benchmark", "limit controller"} <= set(figures["learning_curves.png"])
    for figure in ("comparison.png", "learning_curves.png"):
        assert (folder / figure).stat().st_size > 10_000


def test_noise_option_reaches_training_and_evaluation_environments(tiny_config, tmp_path, monkeypatch) -> None:
    seen: dict[str, set[float]] = {"train": set(), "evaluate": set()}
    counter_init, environment_of = EpisodeCounter.__init__, compare.environment_of

    def record_train(self, env):
        seen["train"].add(env.unwrapped.dynamics.noise_sigma)
        counter_init(self, env)

    def record_evaluate(config):
        env = environment_of(config)
        seen["evaluate"].add(env.dynamics.noise_sigma)
        return env

    monkeypatch.setattr(EpisodeCounter, "__init__", record_train)
    monkeypatch.setattr(compare, "environment_of", record_evaluate)
    compare.main(["--config", str(tiny_config), "--task-ids", "0", "--methods", "rm-id", "td3", "--seeds", "1",
                  "--budget", "rm-id=10", "td3=20", "--eval-every", "rm-id=10", "td3=20", "--eval-episodes", "5",
                  "--noise-sigma", "0.02", "--no-progress", "--output-folder", str(tmp_path / "a")])
    assert seen == {"train": {0.02}, "evaluate": {0.02}}
    data = json.loads((tmp_path / "a" / "comparison" / "compare" / "comparison.json").read_text())
    assert data["noise_sigma"] == 0.02
    # with noise the estimate after 10 probes is not exact: no longer the benchmark's steering
    assert data["runs"]["rm_id"]["0"]["1"]["length_ratio"][1] != pytest.approx(1.0, abs=1e-12)
    seen["train"].clear(), seen["evaluate"].clear()
    compare.main(options(("rm-id",), tiny_config, tmp_path / "b", "--seeds", "1"))
    assert seen == {"train": {0.0}, "evaluate": {0.0}}


def test_unknown_methods_and_bad_budgets_are_one_error_line(tmp_path) -> None:
    out = tmp_path / "out"
    for args, fragment in ((["--methods", "td3", "ppo2"], "unknown method 'ppo2'"),
                           (["--methods", "td3", "--budget", "tdd3=5"], "--budget: unknown method 'tdd3'"),
                           (["--methods", "td3", "--eval-every", "foo=5"], "--eval-every: unknown method 'foo'")):
        one_error_line(run("-m", "maml_rl.compare", *args, "--output-folder", str(out), expect=2), fragment)
    for args in (["--methods", "td3", "td3"], ["--budget", "td3=0"], ["--budget", "td3"], ["--noise-sigma", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            compare.parse_arguments(args)
        assert exit_info.value.code == 2
    assert not out.exists()


@pytest.mark.parametrize("algo", ["td3", "naf"])
def test_off_policy_evaluations_see_the_updates_of_every_labelled_step(evaluation_config, evaluation_task,
                                                                       algo) -> None:
    from dataclasses import replace

    settings = replace(default_settings(algo), learning_starts=10, batch_size=8)
    seen: list[tuple[int, int]] = []

    def updates(model) -> int:
        return model._n_updates if algo == "td3" else model.num_updates

    train_agent(algo, settings, evaluation_config, evaluation_task, 50, 0, progress=False, evaluate_every=20,
                hook=lambda model, n: seen.append((n, updates(model))))
    # one gradient step after every step past learning_starts, done before the evaluation
    assert seen == [(n, max(0, n - 10)) for n in (0, 20, 40, 50)]


def test_episode_counter_counts_episodes_begun() -> None:
    task = load_evaluation_tasks()[0]
    env = EpisodeCounter(AwakeSteering(task=task, max_time=3))
    env.reset(seed=0)
    assert (env.steps, env.episodes) == (0, 0)  # a reset alone costs nothing
    zero = np.zeros(10, dtype=np.float32)
    ends = []
    for _ in range(7):
        _, _, terminated, truncated, _ = env.step(zero)
        ends.append(terminated or truncated)
        if ends[-1]:
            env.reset()
    assert env.steps == 7 and env.episodes == 1 + sum(ends[:-1])
