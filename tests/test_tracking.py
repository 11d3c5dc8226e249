"""--tensorboard: the event files hold the metrics rows' scalars and the figures (read back with
TensorBoard's own reader)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

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
