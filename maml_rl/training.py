"""Meta-training: the loop behind ``train.py``, with run folders, checkpoints and resume.

Every random quantity of batch b is keyed by (seed, b) (tasks) or by (seed, b, round,
task, episode) (episodes), and the meta-parameters are saved after every batch, so a
resumed run continues with exactly the numbers an uninterrupted run would produce.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from maml_rl.checkpoint import load_training_state, save_policy, set_rng_state
from maml_rl.config import Config, ConfigError, config_from_dict, load_config
from maml_rl.console import progress
from maml_rl.curriculum import HardTaskPool, pool_from_rows, revisit_count
from maml_rl.families.base import FamilyEnvironment
from maml_rl.metalearners import MAMLTRPO, meta_update
from maml_rl.policies import NormalMLPPolicy
from maml_rl.runio import MetricsLog, RunFolderError, prepare_new_run, run_folder, write_yaml
from maml_rl.samplers import Sampler, SamplerSpec, make_sampler
from maml_rl.seeding import PURPOSE_TRAINING, revisit_rng, task_rng
from maml_rl.tracking import check_extras, open_log
from maml_rl.utils.yaml_files import load_yaml

DEFAULT_CONFIG = Path("configs/awake.yaml")
DEFAULT_SEED = 1
DEFAULT_OUTPUT = "awake"
DEFAULT_EXPERIMENT = "maml"
POLICY_FILE, METRICS_FILE, CONFIG_FILE = "policy.th", "metrics.jsonl", "config.yaml"


@dataclass
class TrainOptions:
    """Options of a training run (the command line of ``train.py``)."""

    config: Path | None = None  # None: configs/awake.yaml (new run) or the run's own (resume)
    output_folder: Path = Path(DEFAULT_OUTPUT)
    experiment_name: str = DEFAULT_EXPERIMENT
    seed: int | None = None  # None: 1 (new run) or the run's own (resume)
    num_batches: int | None = None
    sampler: str = "vectorized"
    num_workers: int = 2
    save_progress_interval: int = 50
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    threads: int = 1
    ls_threads: int | None = None  # concurrent line-search trials (None: default_ls_threads(); same results)
    ray_address: str | None = None  # Ray sampler: cluster to join (None: a local Ray for the run)
    tensorboard: bool = False  # also write the metrics as TensorBoard scalars (<run folder>/tensorboard)
    # Called after every saved batch with its metrics row and the policy (Ray Tune reports from here).
    on_batch: Callable[[dict[str, Any], NormalMLPPolicy], None] | None = None


def environment_of(config: Config) -> FamilyEnvironment:
    """The environment settings of the config's family built from its env-kwargs (AWAKE:
    ``AwakeEnvironment`` with ``dynamics``, ``plane``, ``num_random_quads``)."""
    return config.environment()


def gym_env_of(config: Config, task: Any = None) -> Any:
    """The config family's single-task ``gymnasium.Env`` on ``task`` (``None``: the nominal
    task) with the config's env-kwargs: what the single-task agents of ``ppo.py`` train on."""
    return config.task_family.make_env(task, config.env_kwargs)


def make_policy(config: Config, seed: int) -> NormalMLPPolicy:
    """A fresh policy sized for the config's family; its initialisation depends only on ``seed``."""
    env = environment_of(config)
    torch.manual_seed(seed)
    policy = NormalMLPPolicy(env.obs_dim, env.act_dim, hidden_sizes=config.hidden_sizes,
                             nonlinearity=config.nonlinearity, init_std=config.init_std)
    if config.init_mean_scale != 1.0:
        # Xavier gives initial mean actions of O(0.5) that differ between observations; where
        # such a mean action already loses the beam (ARES-EA), start near the zero action instead.
        with torch.no_grad():
            policy.mu.weight.mul_(config.init_mean_scale)
    return policy


def check_policy_fits(policy: NormalMLPPolicy, config: Config, source: str) -> None:
    """Refuse a policy whose input/output sizes are not the config's family's (a policy of
    another family), with one line instead of a shape error deep in the sampler."""
    env = environment_of(config)
    if (policy.input_size, policy.output_size) != (env.obs_dim, env.act_dim):
        raise ConfigError(f"{source} maps {policy.input_size} observations to {policy.output_size} actions, but "
                          f"family '{config.family}' has {env.obs_dim} and {env.act_dim} (a policy of another family?)")


def default_ls_threads() -> int:
    """Line-search trials evaluated at once by default: 2 where two cores are usable, else 1.

    The second trial is the one almost always accepted (the full step is rejected in more
    than 99 % of batches, README "Speed"); more concurrent trials rarely pay.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return min(2, cores)


def make_learner(config: Config, policy: NormalMLPPolicy, ls_threads: int | None = None) -> MAMLTRPO:
    """The MAML-TRPO learner of ``config``; ``ls_threads`` (None: ``default_ls_threads()``) only
    changes how fast the line search runs, never its result."""
    return MAMLTRPO(policy, fast_lr=config.fast_lr, num_steps=config.num_steps, first_order=config.first_order,
                    gamma=config.gamma, gae_lambda=config.gae_lambda, max_kl=config.max_kl,
                    cg_iters=config.cg_iters, cg_damping=config.cg_damping, ls_max_steps=config.ls_max_steps,
                    ls_backtrack_ratio=config.ls_backtrack_ratio, adv_std_floor=config.adv_std_floor,
                    ls_threads=default_ls_threads() if ls_threads is None else ls_threads)


def make_spec(config: Config, policy: NormalMLPPolicy, seed: int, purpose: int = PURPOSE_TRAINING) -> SamplerSpec:
    """Sampler settings; ``purpose`` (training or adaptation) keys the episodes' random streams."""
    return SamplerSpec(environment=environment_of(config), episodes_per_task=config.fast_batch_size,
                       seed=seed, policy_config=policy.config(), purpose=purpose)


def batch_tasks(config: Config, env: FamilyEnvironment, seed: int, batch: int,
                pool: HardTaskPool | None = None) -> list:
    """The tasks of meta-batch ``batch``: fresh draws keyed by (seed, batch) from ``env``'s task
    distribution, then, with ``hard-task-fraction`` > 0, tasks revisited
    from ``pool`` (``maml_rl.curriculum``). Without revisits the batch is a function of seed
    and batch only."""
    revisits = revisit_count(config.hard_task_fraction, config.meta_batch_size, len(pool) if pool else 0)
    fresh = env.sample_tasks(task_rng(seed, batch), config.meta_batch_size - revisits,
                             first_id=batch * config.meta_batch_size)
    return fresh + (pool.draw(revisit_rng(seed, batch), revisits) if revisits else [])


def _resolved(config: Config, seed: int, num_batches: int) -> dict[str, Any]:
    data = config.to_yaml_dict()
    data["num-batches"] = num_batches
    return {"config": data, "seed": seed}


def _postfix(row: dict[str, Any]) -> dict[str, str]:
    return {"pre": f"{row['train_return']:.2f}", "post": f"{row['valid_return']:.2f}",
            "success": f"{row['valid_success']:.2f}", "kl": f"{row['kl_after']:.1e}"}


def _check_resume_arguments(options: TrainOptions, stored: dict[str, Any], config: Config, where: Path) -> None:
    """Refuse a --config or --seed that disagrees with the run being resumed (it would silently not apply)."""
    if options.seed is not None and int(options.seed) != int(stored["seed"]):
        raise RunFolderError(f"--seed {options.seed} disagrees with the run in {where.parent} (seed "
                             f"{stored['seed']}); drop --seed to resume it, or start a new run")
    if options.config is not None:
        given = load_config(options.config).to_yaml_dict()
        own = config.to_yaml_dict()
        differing = sorted(k for k in set(given) | set(own) if k != "num-batches" and given.get(k) != own.get(k))
        if differing:
            raise RunFolderError(f"--config {options.config} disagrees with the run in {where.parent} on "
                                 f"{', '.join(differing)}; drop --config to resume it, or start a new run")


def train(options: TrainOptions) -> Path:
    """Run (or resume) a meta-training; returns the run folder."""
    if options.resume and options.overwrite:
        raise RunFolderError("--resume and --overwrite exclude each other")
    if options.save_progress_interval < 1:
        raise ConfigError("--save-progress-interval must be >= 1")
    if options.num_batches is not None and options.num_batches < 1:
        raise ConfigError("--num-batches must be >= 1")
    check_extras(options.sampler, options.tensorboard)  # before any file is written
    torch.set_num_threads(options.threads)
    folder = run_folder(options.output_folder, options.experiment_name, "train")
    if options.resume:
        if not (folder / POLICY_FILE).is_file():
            raise RunFolderError(f"nothing to resume: no {POLICY_FILE} in {folder}")
        stored = read_yaml(folder / CONFIG_FILE)
        config = config_from_dict(stored["config"], str(folder / CONFIG_FILE))
        _check_resume_arguments(options, stored, config, folder / CONFIG_FILE)
        seed = int(stored["seed"])
        num_batches = options.num_batches or config.num_batches
        state = load_training_state(folder / POLICY_FILE)
        start = int(state["metadata"]["batch"]) + 1
        # Rows of batches whose training state was not saved (a crash between the metrics row
        # and the policy file) are dropped: the resumed run recomputes them identically.
        metrics, rows = MetricsLog.resume(folder / METRICS_FILE, lambda row: row["batch"] < start)
        if [row["batch"] for row in rows] != list(range(start)):
            raise RunFolderError(f"{folder / METRICS_FILE} does not hold batches 0..{start - 1} of {POLICY_FILE}")
    else:
        config = load_config(options.config or DEFAULT_CONFIG)
        seed = DEFAULT_SEED if options.seed is None else int(options.seed)
        num_batches = options.num_batches or config.num_batches
        prepare_new_run(folder, options.overwrite)
        state, start, rows = None, 0, []
        metrics = MetricsLog.create(folder / METRICS_FILE)
    write_yaml(folder / CONFIG_FILE, _resolved(config, seed, num_batches))
    policy = make_policy(config, seed)
    if state is not None:
        policy.load_state_dict(state["state_dict"])
        set_rng_state(state["rng"])
    learner = make_learner(config, policy, options.ls_threads)
    sampler: Sampler = make_sampler(options.sampler, make_spec(config, policy, seed), options.num_workers, policy,
                                    options.ray_address)
    board = open_log(options.tensorboard, folder)
    env = environment_of(config)
    # Cumulative cost of the meta-training, carried across resumes (stored with every policy).
    interactions = sum(int(row["interactions"]) for row in rows)
    wall_offset = float(rows[-1]["wall_time"]) if rows else 0.0
    pool = pool_from_rows(rows, config.hard_task_pool, config.task_family.task_from_factors)  # empty for a new run
    run_start = time.perf_counter()
    bar = progress(num_batches, start, "meta-training", "batch", enabled=options.progress)
    try:
        for batch in range(start, num_batches):
            row = meta_update(learner, sampler, batch_tasks(config, env, seed, batch, pool), batch)
            pool.update(row)
            interactions += int(row["interactions"])
            row["total_interactions"] = interactions
            row["wall_time"] = wall_offset + time.perf_counter() - run_start
            metrics.append(row)
            meta = {"batch": batch, "seed": seed, "experiment": options.experiment_name,
                    "meta_training_interactions": interactions, "meta_training_wall_time": row["wall_time"]}
            save_policy(folder / POLICY_FILE, policy, meta, rng=True)  # latest policy = training state
            if (batch + 1) % options.save_progress_interval == 0 or batch + 1 == num_batches:
                save_policy(folder / "checkpoints" / f"policy_batch_{batch + 1:05d}.th", policy, meta)
            if board is not None:
                board.row("train", row, batch)
            if options.on_batch is not None:
                options.on_batch(row, policy)
            bar.set_postfix(_postfix(row), refresh=False)
            bar.update(1)
    finally:
        bar.close()
        sampler.close()
        if board is not None:
            board.close()
    return folder


def read_yaml(path: Path) -> dict[str, Any]:
    """The resolved configuration a run folder stores."""
    data = load_yaml(path, RunFolderError, "run configuration")
    if not isinstance(data, dict) or "config" not in data or "seed" not in data:
        raise RunFolderError(f"{path} is not a resolved run configuration")
    return data
