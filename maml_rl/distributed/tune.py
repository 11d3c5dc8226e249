"""A Ray Tune search over meta-training hyper-parameters (``python tune.py``).

Each trial is a real meta-training (``maml_rl.training.train``) of the search's base config
with the trial's sampled hyper-parameters (``maml_rl.distributed.search_space``), in its
own run folder ``<search>/trials/<trial id>/train``. Every ``eval_every`` batches (and
after the last) the trial's ``on_batch`` hook scores the current meta-policy on the fixed
validation tasks (``maml_rl.distributed.validation``) and reports to Tune.

Early stopping: ASHA (asynchronous successive halving, Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning") on ``val_return``, the post-adaptation mean
return on the validation tasks, maximised, with the meta-batch count as time. The return
is the metric rather than the success rate because it is continuous: it still ranks trials
when every one succeeds always (shorter episodes, a closer final beam) or never, where the
success rate ties; a lost beam costs the penalty, so failures weigh on it heavily.
``val_success`` is reported beside it and breaks ties in the choice of the best trial.

Configs are drawn by Tune's random search (``BasicVariantGenerator``) seeded with the
search's seed, so the same seed draws the same trial configs; every trial trains with that
seed too (common random numbers: trials differ by their hyper-parameters only).

Layout of a search folder (``<output-folder>/<experiment-name>/tune``): ``search.yaml``
(the settings, read back by ``--resume``), ``ray/`` (Tune's experiment state, restored by
``Tuner.restore``), ``asha_rungs.json`` (the scheduler's rungs, ``maml_rl.distributed.scheduler``),
``trials/`` and the outputs ``results.csv``, ``curves.png`` and
``best_config.yaml`` (``maml_rl.distributed.tune_report``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maml_rl.config import config_from_dict
from maml_rl.distributed import require
from maml_rl.distributed.search_space import space_from_dict, to_tune, trial_config
from maml_rl.distributed.validation import Validator, scoring_config
from maml_rl.runio import MetricsLog, RunFolderError, prepare_new_run, write_yaml
from maml_rl.tracking import open_log
from maml_rl.training import POLICY_FILE, TrainOptions, train
from maml_rl.utils.yaml_files import load_yaml

METRIC, MODE, TIME_ATTR = "val_return", "max", "batch"
SETTINGS_FILE, TUNE_FOLDER, TRIALS_FOLDER, VALIDATION_FILE = "search.yaml", "ray", "trials", "validation.jsonl"
RUNGS_FILE = "asha_rungs.json"


@dataclass
class SearchSettings:
    """What a search is (stored in ``search.yaml``; ``--resume`` continues with these)."""

    base: dict[str, Any]  # the base config (dashed keys), validated
    space: dict[str, Any]  # the search space in its YAML form
    num_samples: int = 8
    num_batches: int = 100
    max_concurrent: int = 2
    seed: int = 1
    validation_tasks: int = 8
    validation_episodes: int = 20
    eval_every: int = 10
    grace_period: int = 10
    reduction_factor: int = 3
    tensorboard: bool = False

    def save(self, path: Path) -> None:
        write_yaml(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> "SearchSettings":
        data = load_yaml(path, RunFolderError, "search settings")
        if not isinstance(data, dict) or "base" not in data or "space" not in data:
            raise RunFolderError(f"{path} is not the settings file of a search")
        return cls(**data)


def is_evaluation_batch(batch: int, settings: SearchSettings) -> bool:
    """Whether trials score after meta-batch ``batch`` (0-based): every ``eval_every`` and the last."""
    return (batch + 1) % settings.eval_every == 0 or batch + 1 == settings.num_batches


def run_trial(sample: dict[str, Any], settings: SearchSettings, folder: str) -> None:
    """One Tune trial: train the trial's config, score and report at the evaluation batches.

    A trial restarted by ``Tuner.restore`` finds its run folder and continues it with
    ``train``'s own resume (the same numbers as an uninterrupted trial); a folder without a
    completed batch is started again.
    """
    from ray import tune

    trial_folder = Path(folder) / TRIALS_FOLDER / tune.get_context().get_trial_id()
    run = trial_folder / "train"
    config = trial_config(settings.base, sample, settings.num_batches)
    resume = (run / POLICY_FILE).is_file()
    if not resume:
        trial_folder.mkdir(parents=True, exist_ok=True)
        prepare_new_run(run, overwrite=True)  # nothing of value: no batch was completed
        write_yaml(trial_folder / "trial.yaml", {"trial_id": trial_folder.name, "sample": sample})
    config_path = trial_folder / "config.yaml"
    write_yaml(config_path, config.to_yaml_dict())
    validate = Validator(scoring_config(config, settings.base["env-kwargs"]), settings.validation_tasks,
                         settings.validation_episodes, settings.seed)
    log_path = trial_folder / VALIDATION_FILE
    if resume and log_path.is_file():
        from maml_rl.checkpoint import load_training_state

        done = int(load_training_state(run / POLICY_FILE)["metadata"]["batch"]) + 1
        log, _ = MetricsLog.resume(log_path, lambda row: row["batch"] <= done)
    else:
        log = MetricsLog.create(log_path)
    board = open_log(settings.tensorboard, trial_folder)

    def on_batch(row: dict[str, Any], policy: Any) -> None:
        if not is_evaluation_batch(row["batch"], settings):
            return
        batch = row["batch"] + 1
        scores = validate(policy, trial_folder / "validation" / f"batch_{batch:05d}")
        result = {TIME_ATTR: batch, **scores, "train_return": row["train_return"],
                  "valid_return": row["valid_return"], "valid_success": row["valid_success"],
                  "total_interactions": row["total_interactions"], "wall_time": row["wall_time"]}
        log.append(result)
        if board is not None:
            board.row("validation", scores, batch)
        tune.report(result)

    try:
        train(TrainOptions(config=None if resume else config_path, output_folder=trial_folder.parent,
                           experiment_name=trial_folder.name, seed=None if resume else settings.seed,
                           num_batches=settings.num_batches, resume=resume, progress=False,
                           tensorboard=settings.tensorboard, on_batch=on_batch,
                           ls_threads=1))  # one CPU per trial (tune.with_resources below)
    finally:
        if board is not None:
            board.close()


def check_settings(settings: SearchSettings) -> None:
    """Refuse (one line) settings that cannot run: an invalid base config or space, or evaluation
    and budget settings that can never report."""
    from maml_rl.config import ConfigError
    from maml_rl.distributed.search_space import check_space

    config_from_dict(settings.base, "base config")
    check_space(settings.base, space_from_dict(settings.space, "search space"), "search space")
    for name in ("num_samples", "num_batches", "max_concurrent", "validation_tasks", "validation_episodes",
                 "eval_every", "grace_period"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(settings, name)}")
    if settings.reduction_factor < 2:
        raise ConfigError(f"--reduction-factor must be >= 2, got {settings.reduction_factor}")


def _tuner(settings: SearchSettings, folder: Path, resume: bool) -> Any:
    tune = require("ray.tune", "ray", "tune.py")
    from ray.tune.search import BasicVariantGenerator

    from maml_rl.distributed.scheduler import ResumableASHA

    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings, folder=str(folder)),
                                    {"cpu": 1})
    experiment = folder / TUNE_FOLDER
    if resume:
        if not tune.Tuner.can_restore(str(experiment)):
            raise RunFolderError(f"nothing to resume: no Ray Tune experiment in {experiment}")
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True,
                                  resume_errored=True)
    scheduler = ResumableASHA(folder / RUNGS_FILE, time_attr=TIME_ATTR, max_t=settings.num_batches,
                              grace_period=settings.grace_period, reduction_factor=settings.reduction_factor)
    return tune.Tuner(
        trainable, param_space=to_tune(space_from_dict(settings.space, "search space")),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, scheduler=scheduler,
                                    search_alg=BasicVariantGenerator(random_state=settings.seed),
                                    num_samples=settings.num_samples,
                                    max_concurrent_trials=settings.max_concurrent),
        run_config=tune.RunConfig(name=TUNE_FOLDER, storage_path=str(folder), verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=0)))


def prepare_search(settings: SearchSettings | None, folder: Path, resume: bool, overwrite: bool) -> SearchSettings:
    """The settings of a new search (written to ``folder``, which must be new or ``overwrite``n)
    or, with ``resume``, those the search in ``folder`` stored."""
    folder = Path(folder)
    if resume:
        if not (folder / SETTINGS_FILE).is_file():
            raise RunFolderError(f"nothing to resume: no {SETTINGS_FILE} in {folder}")
        return SearchSettings.load(folder / SETTINGS_FILE)
    assert settings is not None
    check_settings(settings)
    prepare_new_run(folder, overwrite)
    settings.save(folder / SETTINGS_FILE)
    return settings


def run_search(settings: SearchSettings, folder: Path, resume: bool = False,
               ray_address: str | None = None) -> Path:
    """Run (or, with ``resume``, continue via ``Tuner.restore``) the search in ``folder``.

    Without ``ray_address`` a local Ray with ``max_concurrent`` cores runs the trials and is
    shut down at the end; with one the search joins that cluster (run folders are written
    by the trials where they run: on several machines ``folder`` must be shared storage).
    Interrupting it (Ctrl-C) lets Tune save its state and return (``tune_report.finished``
    tells). Returns the (absolute) search folder.
    """
    from maml_rl.distributed.runtime import RaySession

    folder = Path(folder).resolve()  # trials run in their own working folders
    session = RaySession.connect(ray_address, num_cpus=settings.max_concurrent, feature="tune.py")
    try:
        _tuner(settings, folder, resume).fit()
    finally:
        session.close()
    return folder
