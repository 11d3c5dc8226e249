"""Task families through one core: the registry, the AWAKE adapter, ARES-EA end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from maml_rl.config import ConfigError, config_from_dict, load_config
from maml_rl.families import UnknownFamilyError, family_names, get_family
from maml_rl.runio import RunFolderError
from test_scripts import one_line_error, run

ARES_CONFIG = REPO / "configs" / "ares_ea.yaml"
ARES_EVALUATION = REPO / "configs" / "ares_ea_evaluation.yaml"


def _raw(path=ARES_CONFIG) -> dict:
    return yaml.safe_load(path.read_text())


# ----------------------------------------------------------------------------- registry

def test_registry_finds_both_families_by_their_folders() -> None:
    assert {"awake", "ares_ea"} <= set(family_names())
    for name in ("awake", "ares_ea"):
        family = get_family(name)
        assert family.name == name and family.default_task_file.is_file()
        assert family.load_evaluation_tasks(None)
    with pytest.raises(UnknownFamilyError, match="unknown task family 'nope'; known: .*awake"):
        get_family("nope")


def test_configs_name_their_family_and_old_configs_stay_awake() -> None:
    assert load_config(REPO / "configs" / "awake.yaml").family == "awake"  # no 'family' key: the default
    ares = load_config(ARES_CONFIG)
    assert ares.family == "ares_ea" and ares.environment().obs_dim == 13 and ares.environment().act_dim == 5
    assert load_config(ARES_EVALUATION).fast_lr == 0.001


@pytest.mark.parametrize("change, fragment", [
    ({"family": "nope"}, "'family': unknown task family 'nope'"),
    ({"env-name": "AwakeSteering-v0"}, "'env-name' must be AresEA-v0"),
    ({"env-kwargs": {"plane": "horizontal"}}, "'env-kwargs' has an unknown option"),
    ({"env-kwargs": {"max_time": 0}}, "'env-kwargs': max_time must be a positive integer"),
])
def test_config_checks_go_through_the_family(change: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({**_raw(), **change}, "my.yaml")
    assert str(info.value).startswith("my.yaml: ") and fragment in str(info.value), str(info.value)


def test_an_unknown_family_is_one_line_naming_the_key_and_the_file(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**_raw(), "family": "nope"}))
    result = run("train.py", "--config", str(path), "--output-folder", str(tmp_path / "out"), "--no-progress",
                 expect=2)
    one_line_error(result, str(path), "'family'", "nope")


def test_ares_tasks_round_trip_through_their_factors() -> None:
    family = get_family("ares_ea")
    for task in family.load_evaluation_tasks(None):
        assert family.task_from_factors(task.id, list(task.factors)) == task
    with pytest.raises(ValueError, match="19 factors"):
        family.task_from_factors(0, [1.0] * 10)


def test_the_curriculum_pool_rebuilds_tasks_of_the_run_s_family() -> None:
    from maml_rl.curriculum import pool_from_rows

    family = get_family("ares_ea")
    tasks = family.load_evaluation_tasks(None)[:2]
    row = {"task_ids": [t.id for t in tasks], "task_factors": [list(t.factors) for t in tasks],
           "train_success_per_task": [0.0, 1.0], "valid_success_per_task": [1.0, 1.0]}
    assert pool_from_rows([row], 8, family.task_from_factors).tasks == [tasks[0]]


# ----------------------------------------------------------------------------- ARES through the samplers

@pytest.fixture(scope="module")
def ares_spec():
    pytest.importorskip("cheetah")
    from maml_rl.policies import NormalMLPPolicy
    from maml_rl.samplers import SamplerSpec

    environment = config_from_dict({**_raw(), "env-kwargs": {"max_time": 12}}).environment()
    torch.manual_seed(4)
    policy = NormalMLPPolicy(environment.obs_dim, environment.act_dim, hidden_sizes=(16, 16))
    return SamplerSpec(environment, 3, seed=7, policy_config=policy.config()), policy


def test_ares_multiprocessing_sampler_gives_the_vectorised_episodes(ares_spec) -> None:
    from maml_rl.samplers import MultiprocessingSampler, VectorizedSampler
    from maml_rl.seeding import task_rng
    from maml_rl.utils.torch_utils import stack_params
    from test_samplers import assert_same_episodes

    spec, policy = ares_spec
    tasks = spec.environment.sample_tasks(task_rng(7, 0), 3)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, len(tasks))
    reference = VectorizedSampler(spec, policy).sample(params, tasks, batch=2, round_index=1)
    assert reference.num_tasks == 3 and reference.observations.shape[-1] == 13
    assert reference.actions.shape[-1] == 5
    for workers in (1, 2):
        with MultiprocessingSampler(spec, num_workers=workers) as sampler:
            assert_same_episodes(sampler.sample(params, tasks, batch=2, round_index=1), reference)


def test_ares_episodes_do_not_depend_on_the_batch_composition(ares_spec) -> None:
    from maml_rl.samplers import VectorizedSampler
    from maml_rl.seeding import task_rng
    from maml_rl.utils.torch_utils import stack_params
    from test_samplers import assert_same_episodes

    spec, policy = ares_spec
    tasks = spec.environment.sample_tasks(task_rng(7, 1), 2)
    sampler = VectorizedSampler(spec, policy)
    params = stack_params({n: p.detach() for n, p in policy.named_parameters()}, 2)
    full = sampler.sample(params, tasks, batch=0, round_index=0)
    alone = sampler.sample({n: p[:1] for n, p in params.items()}, tasks[:1], batch=0, round_index=0)
    assert_same_episodes(full.select_tasks([0]), alone)


def test_ares_evaluation_runs_the_policy_and_both_references_on_the_same_states(ares_spec) -> None:
    spec, _ = ares_spec
    environment = spec.environment
    task = get_family("ares_ea").load_evaluation_tasks(None)[2]
    hold = environment.evaluate(lambda obs: np.zeros((len(obs), 5)), task, 2, seed=3)
    again = environment.evaluate(None, task, 2, seed=3)
    assert np.array_equal(hold.initial_kicks, again.initial_kicks) and again.policy is None
    assert hold.initial_kicks.shape == (2, 9)
    # Holding the settings never reaches the target: every episode runs to the time limit.
    assert np.all(hold.policy.lengths == 12) and not hold.policy.success.any()
    for stats in (hold.benchmark, hold.limit):
        assert stats.lengths.shape == (2,) and np.all((stats.lengths >= 1) & (stats.lengths <= 12))
    # The limit plans (4-8 steps on the evaluation tasks) succeed within the horizon.
    assert hold.limit.success.all() and np.all(hold.limit.lengths <= hold.benchmark.lengths)


# ----------------------------------------------------------------------------- ARES end to end

@pytest.fixture(scope="module")
def tiny_ares(tmp_path_factory):
    pytest.importorskip("cheetah")
    data = _raw()
    data.update({"hidden-sizes": [16, 16], "fast-batch-size": 3, "num-steps": 1, "meta-batch-size": 2,
                 "num-batches": 2, "cg-iters": 5, "ls-max-steps": 5})
    data["env-kwargs"]["max_time"] = 10
    folder = tmp_path_factory.mktemp("ares")
    config = folder / "tiny_ares.yaml"
    config.write_text(yaml.safe_dump(data))
    run("train.py", "--config", str(config), "--output-folder", str(folder / "runs"), "--experiment-name", "ares",
        "--no-progress")
    return config, folder / "runs" / "ares" / "train"


def test_tiny_ares_meta_training_through_train_py(tiny_ares) -> None:
    from maml_rl.checkpoint import load_training_state

    _, run_folder = tiny_ares
    rows = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["batch"] for r in rows] == [0, 1] and [r["task_ids"] for r in rows] == [[0, 1], [2, 3]]
    assert all(len(f) == 19 for r in rows for f in r["task_factors"])
    assert all(r["interactions"] > 0 and np.isfinite(r["valid_return"]) for r in rows)
    state = load_training_state(run_folder / "policy.th")
    assert state["policy_config"]["input_size"] == 13 and state["policy_config"]["output_size"] == 5
    assert yaml.safe_load((run_folder / "config.yaml").read_text())["config"]["family"] == "ares_ea"


def test_tiny_ares_adaptation_through_test_py(tiny_ares, tmp_path) -> None:
    config, run_folder = tiny_ares
    run("test.py", "--use-meta-policy", "--policy", str(run_folder / "policy.th"), "--config", str(config),
        "--task-ids", "0", "2", "--num-batches", "1", "--num-episodes", "2", "--plot-interval", "1",
        "--output-folder", str(tmp_path), "--experiment-name", "ares")
    folder = tmp_path / "ares" / "test"
    rows = [json.loads(line) for line in (folder / "evaluations.jsonl").read_text().splitlines()]
    assert [(r["batch"], r["task_id"]) for r in rows] == [(0, 0), (0, 2), (1, 0), (1, 2)]
    for key in ("policy_success_rate", "benchmark_mean_length", "limit_mean_length", "length_ratio_limit",
                "policy_median_final_distance", "limit_median_final_distance"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert all(r["benchmark_median_final_distance"] > 0 for r in rows)
    from maml_rl.families.ares_ea.results_table import main as results_table, table

    text = table(folder)
    assert "after 1 adaptation batches" in text and "| 0 | " in text and "| 2 | " in text and "| all 2 | " in text
    assert results_table([str(folder)]) == 0
    with pytest.raises(RunFolderError, match="no evaluations.jsonl"):
        table(tmp_path)
    for name in ("figures/verification_batch_0000.png", "figures/verification_batch_0001.png",
                 "figures/adaptation_progress.png", "policies/task_0.th", "policies/task_2.th", "metrics.jsonl"):
        assert (folder / name).stat().st_size > 0, name


def test_a_policy_of_another_family_and_awake_only_tools_are_refused(tiny_ares, tmp_path) -> None:
    config, run_folder = tiny_ares
    result = run("test.py", "--use-meta-policy", "--policy", str(REPO / "awake" / "pretrained_policy.th"),
                 "--config", str(config), "--output-folder", str(tmp_path), expect=2)
    one_line_error(result, "pretrained_policy.th", "10 observations", "family 'ares_ea'")
    result = run("run_maml.py", "--config", str(config), "--policy", str(run_folder / "policy.th"),
                 "--output-folder", str(tmp_path), expect=2)
    one_line_error(result, "run_maml.py supports the 'awake' family only")
