"""The score a hyper-parameter search selects on: post-adaptation return and success on a
fixed set of validation tasks.

Every evaluation adapts the current meta-policy to each validation task exactly as
meta-training's inner loop does (one adaptation batch: ``num-steps`` REINFORCE steps of
``fast-lr`` on ``fast-batch-size`` episodes, ``maml_rl.adaptation.adapt``) and then runs
the adapted policies' mean action from ``episodes`` fixed initial states per task. The tasks
(``maml_rl.distribution.validation_tasks``), the adaptation episodes' random streams and
the initial states are the same at every evaluation and in every trial of a search, so
scores differ only through the hyper-parameters and the training.

The reward is the same in every trial: the episodes are scored (and adapted) with the
search's base environment options, not the trial's, because a searched
``beam_loss_penalty`` changes the scale of the return; comparing trials on their own
rewards would favour small penalties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from maml_rl.adaptation import adapt, adaptation_sampler
from maml_rl.config import Config, config_from_dict
from maml_rl.distribution import validation_tasks
from maml_rl.policies import NormalMLPPolicy


def scoring_config(trial: Config, base_env_kwargs: Mapping[str, Any]) -> Config:
    """The trial's config with the search's base environment options (a common reward)."""
    data = trial.to_yaml_dict()
    data["env-kwargs"] = dict(base_env_kwargs)
    return config_from_dict(data, "validation config")


class Validator:
    """Post-adaptation scores of a meta-policy on ``num_tasks`` fixed validation tasks.

    Parameters
    ----------
    config
        The trial's config with the common environment options (``scoring_config``).
    num_tasks, episodes
        Validation tasks and evaluation episodes per task.
    seed
        Fixes the tasks, the adaptation episodes and the initial states.
    """

    def __init__(self, config: Config, num_tasks: int, episodes: int, seed: int) -> None:
        self.config = config
        self.tasks = validation_tasks(config.environment(), num_tasks, seed)
        self.episodes = episodes
        self.seed = seed

    def __call__(self, policy: NormalMLPPolicy, folder: Path) -> dict[str, float]:
        """Scores of ``policy`` (its adaptation records go to ``folder``): ``val_return`` and
        ``val_success`` after adaptation (mean over tasks of the mean return and of the success
        rate), ``val_length`` (mean episode length) and the same before adaptation (``*_pre``)."""
        sampler = adaptation_sampler(self.config, policy, self.seed)
        try:
            points = adapt(policy, self.config, self.tasks, sampler, 1, folder, self.episodes, 1, self.seed)
        finally:
            sampler.close()
        out = {}
        for suffix, point in (("_pre", points[0]), ("", points[-1])):
            stats = [ev.policy for ev in point.evaluations]
            out[f"val_return{suffix}"] = float(np.mean([s.mean_return for s in stats]))
            out[f"val_success{suffix}"] = float(np.mean([s.success_rate for s in stats]))
            out[f"val_length{suffix}"] = float(np.mean([s.mean_length for s in stats]))
        return out
