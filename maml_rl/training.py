"""Meta-training: the loop behind ``train.py``, with run folders, checkpoints and resume.

Every random quantity of batch b is keyed by (seed, b) (tasks) or by (seed, b, round,
task, episode) (episodes), and the meta-parameters are saved after every batch, so a
resumed run continues with exactly the numbers an uninterrupted run would produce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from maml_rl.checkpoint import load_training_state, save_policy, set_rng_state
from maml_rl.config import Config, ConfigError, config_from_dict, load_config
from maml_rl.envs.awake import AwakeSteering
from maml_rl.envs.tasks import sample_tasks
from maml_rl.metalearners import MAMLTRPO, meta_update
from maml_rl.policies import NormalMLPPolicy
from maml_rl.runio import MetricsLog, RunFolderError, prepare_new_run, read_metrics, run_folder, write_yaml
from maml_rl.samplers import Sampler, SamplerSpec, make_sampler
from maml_rl.seeding import task_rng
from maml_rl.utils.yaml_files import load_yaml

DEFAULT_OUTPUT = "awake"
DEFAULT_EXPERIMENT = "maml"
POLICY_FILE, METRICS_FILE, CONFIG_FILE = "policy.th", "metrics.jsonl", "config.yaml"


@dataclass
class TrainOptions:
    """Options of a training run (the command line of ``train.py``)."""

    config: Path = Path("configs/awake.yaml")
    output_folder: Path = Path(DEFAULT_OUTPUT)
    experiment_name: str = DEFAULT_EXPERIMENT
    seed: int = 1
    num_batches: int | None = None
    sampler: str = "vectorized"
    num_workers: int = 2
    save_progress_interval: int = 50
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    threads: int = 1


def environment_of(config: Config) -> AwakeSteering:
    """An environment built from the config's env-kwargs (its dynamics, plane, task options)."""
    return AwakeSteering(**config.env_kwargs)


def make_policy(config: Config, seed: int) -> NormalMLPPolicy:
    """A fresh policy; its initialisation depends only on ``seed``."""
    torch.manual_seed(seed)
    return NormalMLPPolicy(10, 10, hidden_sizes=config.hidden_sizes, nonlinearity=config.nonlinearity,
                           init_std=config.init_std)


def make_learner(config: Config, policy: NormalMLPPolicy) -> MAMLTRPO:
    return MAMLTRPO(policy, fast_lr=config.fast_lr, num_steps=config.num_steps, first_order=config.first_order,
                    gamma=config.gamma, gae_lambda=config.gae_lambda, max_kl=config.max_kl,
                    cg_iters=config.cg_iters, cg_damping=config.cg_damping, ls_max_steps=config.ls_max_steps,
                    ls_backtrack_ratio=config.ls_backtrack_ratio)


def make_spec(config: Config, policy: NormalMLPPolicy, seed: int) -> SamplerSpec:
    env = environment_of(config)
    return SamplerSpec(dynamics=env.dynamics, plane=env.plane, episodes_per_task=config.fast_batch_size,
                       seed=seed, policy_config=policy.config())


def batch_tasks(config: Config, env: AwakeSteering, seed: int, batch: int) -> list:
    """The tasks of meta-batch ``batch`` (a function of seed and batch only; ``env`` gives the
    plane and which variables vary)."""
    return sample_tasks(task_rng(seed, batch), config.meta_batch_size, env.num_random_quads,
                        first_id=batch * config.meta_batch_size, plane=env.plane)


def _resolved(config: Config, options: TrainOptions, num_batches: int) -> dict[str, Any]:
    data = config.to_yaml_dict()
    data["num-batches"] = num_batches
    return {"config": data, "seed": options.seed}


def _postfix(row: dict[str, Any]) -> dict[str, str]:
    return {"pre": f"{row['train_return']:.2f}", "post": f"{row['valid_return']:.2f}",
            "success": f"{row['valid_success']:.2f}", "kl": f"{row['kl_after']:.1e}"}


def train(options: TrainOptions) -> Path:
    """Run (or resume) a meta-training; returns the run folder."""
    if options.resume and options.overwrite:
        raise RunFolderError("--resume and --overwrite exclude each other")
    if options.save_progress_interval < 1:
        raise ConfigError("--save-progress-interval must be >= 1")
    if options.num_batches is not None and options.num_batches < 1:
        raise ConfigError("--num-batches must be >= 1")
    torch.set_num_threads(options.threads)
    folder = run_folder(options.output_folder, options.experiment_name, "train")
    if options.resume:
        if not (folder / POLICY_FILE).is_file():
            raise RunFolderError(f"nothing to resume: no {POLICY_FILE} in {folder}")
        stored = read_yaml(folder / CONFIG_FILE)
        config = config_from_dict(stored["config"], str(folder / CONFIG_FILE))
        options.seed = int(stored["seed"])
        num_batches = options.num_batches or config.num_batches
        state = load_training_state(folder / POLICY_FILE)
        start = int(state["metadata"]["batch"]) + 1
        rows = [r for r in read_metrics(folder / METRICS_FILE) if r["batch"] < start]
    else:
        config = load_config(options.config)
        num_batches = options.num_batches or config.num_batches
        prepare_new_run(folder, options.overwrite)
        state, start, rows = None, 0, []
    write_yaml(folder / CONFIG_FILE, _resolved(config, options, num_batches))
    policy = make_policy(config, options.seed)
    if state is not None:
        policy.load_state_dict(state["state_dict"])
        set_rng_state(state["rng"])
    learner = make_learner(config, policy)
    metrics = MetricsLog(folder / METRICS_FILE, rows)
    sampler: Sampler = make_sampler(options.sampler, make_spec(config, policy, options.seed),
                                    options.num_workers, policy)
    env = environment_of(config)
    run_start = time.perf_counter()
    try:
        bar = tqdm(range(start, num_batches), initial=start, total=num_batches, desc="meta-training",
                   unit="batch", disable=not options.progress, dynamic_ncols=True)
        for batch in bar:
            row = meta_update(learner, sampler, batch_tasks(config, env, options.seed, batch), batch)
            row["wall_time"] = time.perf_counter() - run_start
            metrics.append(row)
            meta = {"batch": batch, "seed": options.seed, "experiment": options.experiment_name}
            save_policy(folder / POLICY_FILE, policy, meta, rng=True)  # latest policy = training state
            if (batch + 1) % options.save_progress_interval == 0 or batch + 1 == num_batches:
                save_policy(folder / "checkpoints" / f"policy_batch_{batch + 1:05d}.th", policy, meta)
            bar.set_postfix(_postfix(row), refresh=False)
    finally:
        sampler.close()
    return folder


def read_yaml(path: Path) -> dict[str, Any]:
    """The resolved configuration a run folder stores."""
    data = load_yaml(path, RunFolderError, "run configuration")
    if not isinstance(data, dict) or "config" not in data or "seed" not in data:
        raise RunFolderError(f"{path} is not a resolved run configuration")
    return data
