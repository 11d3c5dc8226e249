"""The Ray sampler on a real local cluster (``ray start --head``): the same episodes and training
curve as the vectorised sampler for 1 and 2 actors, failures within seconds, resume, missing extra."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from test_samplers import _training_curve, assert_same_episodes, make_spec

ray = pytest.importorskip("ray")  # the extra 'ray' (README's test command installs it)

from maml_rl.distributed.ray_sampler import RaySampler  # noqa: E402
from maml_rl.envs.tasks import sample_tasks  # noqa: E402
from maml_rl.policies import NormalMLPPolicy  # noqa: E402
from maml_rl.samplers import SamplerError, VectorizedSampler  # noqa: E402
from maml_rl.seeding import task_rng  # noqa: E402
from maml_rl.utils.torch_utils import stack_params  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))


def quiet_env() -> dict[str, str]:
    """This process's environment (with the cluster's token, once started), quiet and single-threaded."""
    return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
TIMING_KEYS = ("time_", "wall_time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(request) -> str:
    """A real one-node cluster started with ``ray start --head`` (2 CPUs, own temp folder);
    always stopped with ``ray stop``, even when starting it or a test fails. Token
    authentication is off on this loopback-only test cluster (Ray reads the mode when it is
    imported, before this fixture could hand the driver a token)."""
    temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's socket paths live below it

    def stop() -> None:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], env=quiet_env(), capture_output=True, timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)

    request.addfinalizer(stop)
    port = free_port()
    subprocess.run([RAY, "start", "--head", "--port", str(port), "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
                    "--temp-dir", temp_dir, "--include-dashboard=false", "--disable-usage-stats"],
                   env=dict(quiet_env(), RAY_AUTH_MODE="disabled"), check=True, capture_output=True, timeout=120)
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def connected(cluster) -> str:
    """This process joined to the cluster (samplers then use the connection and leave it open)."""
    ray.init(address=cluster, log_to_driver=False, configure_logging=False)
    return cluster


@pytest.fixture(scope="module")
def policy() -> NormalMLPPolicy:
    torch.manual_seed(3)
    return NormalMLPPolicy(10, 10, hidden_sizes=(32, 32))


def stacked(policy: NormalMLPPolicy, k: int) -> dict:
    return stack_params({n: p.detach() for n, p in policy.named_parameters()}, k)


def test_joining_by_address_gives_the_vectorised_episodes_and_disconnects(cluster, policy) -> None:
    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 0), 5)
    reference = VectorizedSampler(spec, policy).sample(stacked(policy, 5), tasks, batch=3, round_index=1)
    assert not ray.is_initialized()
    with RaySampler(spec, num_workers=2, address=cluster) as sampler:
        assert ray.is_initialized()
        assert len(set(sampler.pids)) == 2 and os.getpid() not in sampler.pids  # two actor processes
        assert_same_episodes(sampler.sample(stacked(policy, 5), tasks, batch=3, round_index=1), reference)
    assert not ray.is_initialized()  # the sampler joined, so it leaves; the cluster keeps running


def test_episodes_are_bitwise_those_of_the_vectorised_sampler(connected, policy) -> None:
    spec = make_spec(policy)
    for k in (1, 5):  # fewer tasks than actors, and uneven shares
        tasks = sample_tasks(task_rng(5, k), k)
        reference = VectorizedSampler(spec, policy).sample(stacked(policy, k), tasks, batch=7, round_index=2)
        for workers in (1, 2):
            with RaySampler(spec, num_workers=workers) as sampler:
                assert_same_episodes(sampler.sample(stacked(policy, k), tasks, batch=7, round_index=2), reference)
    assert ray.is_initialized()  # a connection the sampler did not open is left alone


def test_training_curve_is_the_vectorised_one_for_1_and_2_actors(connected) -> None:
    reference = _training_curve(lambda spec, policy: VectorizedSampler(spec, policy))
    for workers in (1, 2):
        curve = _training_curve(lambda spec, policy, n=workers: RaySampler(spec, num_workers=n))
        assert len(curve) == len(reference)
        for a, b in zip(reference, curve):  # every logged number identical, timings aside
            assert {k: v for k, v in a.items() if not k.startswith("time_")} == \
                {k: v for k, v in b.items() if not k.startswith("time_")}


def test_killed_actor_is_a_sampler_error_within_seconds(connected, policy) -> None:
    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 0), 2)
    sampler = RaySampler(spec, num_workers=2)
    try:
        sampler.sample(stacked(policy, 2), tasks, 0, 0)
        os.kill(sampler.pids[1], signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(SamplerError, match="worker 1 died"):
            sampler.sample(stacked(policy, 2), tasks, 0, 1)
        assert time.monotonic() - start < 5
        with pytest.raises(SamplerError, match="closed"):  # never half a round
            sampler.sample(stacked(policy, 2), tasks, 0, 2)
    finally:
        sampler.close()
        sampler.close()  # idempotent


def test_failing_actor_reports_its_error(connected, policy) -> None:
    spec = make_spec(policy)
    tasks = sample_tasks(task_rng(5, 0), 2)
    params = {n: p for n, p in stacked(policy, 2).items() if n != "mu.bias"}
    with RaySampler(spec, num_workers=1) as sampler:
        with pytest.raises(SamplerError, match="KeyError"):
            sampler.sample(params, tasks, 0, 0)


def tiny_config(folder: Path) -> Path:
    data = yaml.safe_load((REPO / "configs" / "awake.yaml").read_text())
    data.update({"hidden-sizes": [16, 16], "fast-batch-size": 3, "num-steps": 1, "meta-batch-size": 2,
                 "num-batches": 4, "cg-iters": 5, "ls-max-steps": 5})
    data["env-kwargs"]["max_time"] = 15
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def metrics(folder: Path) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(TIMING_KEYS)} for row in rows]


def test_killed_actor_during_training_keeps_the_batches_and_resume_continues(connected, tmp_path,
                                                                             monkeypatch) -> None:
    from maml_rl import training
    from maml_rl.training import TrainOptions, train

    config = tiny_config(tmp_path)
    reference = train(TrainOptions(config=config, output_folder=tmp_path / "ref", progress=False))
    samplers = []
    make = training.make_sampler
    monkeypatch.setattr(training, "make_sampler", lambda *a, **k: samplers.append(make(*a, **k)) or samplers[-1])

    def kill_after_batch_1(row: dict, policy) -> None:
        if row["batch"] == 1:
            os.kill(samplers[0].pids[0], signal.SIGKILL)

    options = TrainOptions(config=config, output_folder=tmp_path / "ray", sampler="ray", num_workers=2,
                           progress=False, on_batch=kill_after_batch_1)
    start = time.monotonic()
    with pytest.raises(SamplerError, match="worker 0 died"):
        train(options)
    assert time.monotonic() - start < 60
    folder = tmp_path / "ray" / "maml" / "train"
    assert [row["batch"] for row in metrics(folder)] == [0, 1]  # every completed batch is on disk
    train(TrainOptions(output_folder=tmp_path / "ray", sampler="ray", num_workers=2, resume=True, progress=False))
    for a, b in zip(metrics(folder), metrics(reference)):
        assert {k for k in a if a[k] != b.get(k)} == set()
    assert metrics(folder) == metrics(reference)  # the resumed Ray run is the uninterrupted vectorised run


def test_cli_embedded_ray_and_joined_cluster(cluster, tmp_path) -> None:
    config = tiny_config(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, *args], cwd=REPO, env=quiet_env(), capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        return result

    # No address: the script starts its own local Ray (2 CPUs) and shuts it down.
    run("train.py", "--config", str(config), "--output-folder", str(tmp_path), "--num-batches", "2",
        "--sampler", "ray", "--num-workers", "2", "--no-progress")
    run("train.py", "--config", str(config), "--output-folder", str(tmp_path), "--experiment-name", "vec",
        "--num-batches", "2", "--no-progress")
    assert metrics(tmp_path / "maml" / "train") == metrics(tmp_path / "vec" / "train")
    # test.py joins the running cluster.
    policy = tmp_path / "maml" / "train" / "policy.th"
    common = ["test.py", "--config", str(config), "--use-meta-policy", "--policy", str(policy), "--task-ids", "0",
              "--num-batches", "2", "--num-episodes", "3", "--plot-interval", "2", "--output-folder", str(tmp_path)]
    run(*common, "--experiment-name", "t-ray", "--sampler", "ray", "--num-workers", "2", "--ray-address", cluster)
    run(*common, "--experiment-name", "t-vec")
    assert metrics(tmp_path / "t-ray" / "test") == metrics(tmp_path / "t-vec" / "test")


def test_missing_ray_is_one_error_line_naming_the_extra(tmp_path, monkeypatch, capsys) -> None:
    import train as train_script

    from maml_rl.cli import run_main

    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        run_main(train_script.main, ["--output-folder", str(tmp_path), "--sampler", "ray", "--no-progress"])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "extra 'ray'" in lines[0] and "pip install -e '.[ray]'" in lines[0]
    assert not (tmp_path / "maml").exists()  # refused before any file is written
