"""--tensorboard: the event files hold the metrics rows' scalars and the figures (read back with
TensorBoard's own reader)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from conftest import REPO  # noqa: E402
from test_ray import tiny_config  # noqa: E402


def events(folder) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_train_and_test_write_scalars_and_figures(tmp_path) -> None:
    from maml_rl.training import TrainOptions, train

    import test as test_script

    config = tiny_config(tmp_path)
    folder = train(TrainOptions(config=config, output_folder=tmp_path, num_batches=3, progress=False,
                                tensorboard=True))
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    board = events(folder / "tensorboard")
    tags = set(board.Tags()["scalars"])
    for key in ("train_return", "valid_return", "valid_success", "train_length", "kl_after", "ls_step",
                "time_sampling", "time_trpo", "interactions", "total_interactions"):
        assert f"train/{key}" in tags, key
        values = board.Scalars(f"train/{key}")
        assert [v.step for v in values] == [0, 1, 2]
        assert [v.value for v in values] == pytest.approx([float(r[key]) for r in rows], rel=1e-6)
    assert test_script.main(["--config", str(config), "--use-meta-policy", "--policy", str(folder / "policy.th"),
                             "--task-ids", "0", "--num-batches", "2", "--num-episodes", "3", "--plot-interval", "1",
                             "--output-folder", str(tmp_path), "--tensorboard"]) == 0
    test_folder = tmp_path / "maml" / "test"
    board = events(test_folder / "tensorboard")
    rows = [json.loads(line) for line in (test_folder / "metrics.jsonl").read_text().splitlines()]
    assert [v.value for v in board.Scalars("adaptation/train_return")] == \
        pytest.approx([r["train_return"] for r in rows], rel=1e-6)
    assert [v.step for v in board.Scalars("evaluation/task_0/success")] == [0, 1, 2]
    images = board.Tags()["images"]
    assert "figures/verification" in images and "figures/adaptation_progress" in images
    image = board.Images("figures/verification")[-1]
    assert image.step == 2 and image.width > 100 and image.height > 100


def test_ppo_writes_the_evaluation_scalars_and_figure(tmp_path, capsys) -> None:
    import ppo as ppo_script

    model = tmp_path / "ppo" / "agent.zip"
    assert ppo_script.main(["--train", "--task-id", "1", "--steps", "64", "--num-episodes", "4", "--no-progress",
                            "--output-file", str(model), "--tensorboard"]) == 0
    board = events(tmp_path / "ppo" / "agent_tensorboard")
    tags = set(board.Tags()["scalars"])
    printed = capsys.readouterr().out
    for controller in ("policy", "benchmark", "limit"):
        for key in ("success_rate", "mean_length", "mean_return"):
            assert f"train/task_1/{controller}_{key}" in tags, (controller, key)
    # One point, at the agent's trained steps (PPO trains whole rollouts: at least --steps).
    (point,) = board.Scalars("train/task_1/benchmark_success_rate")
    assert point.step >= 64 and f"trained {point.step:,} steps" in printed
    # The benchmark's numbers are those of the evaluation: rerun it independently and compare.
    from maml_rl.config import load_config
    from maml_rl.training import environment_of

    from maml_rl.envs.tasks import load_evaluation_tasks

    (length,) = board.Scalars("train/task_1/benchmark_mean_length")
    env = environment_of(load_config(REPO / "configs" / "awake_evaluation.yaml"))
    reference = env.evaluate(None, load_evaluation_tasks()[1], 4, 1)  # ppo.py's default --seed 1
    assert length.value == pytest.approx(reference.benchmark.mean_length)
    assert point.value == pytest.approx(reference.benchmark.success_rate)
    (image,) = board.Images("train/figure")
    assert image.step == point.step and image.width > 100 and image.height > 100
