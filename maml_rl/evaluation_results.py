"""Outcome of evaluating a controller and the references of its family on one task.

Family-independent: ``ControllerStats`` holds n episodes of one controller, ``Evaluation``
the policy and the family's references (the ``benchmark`` and ``limit`` slots; the family's
``FigureStyle`` names them) on the same initial states. Each family's ``evaluate`` fills
them (AWAKE: ``maml_rl.evaluation``; ARES-EA: ``maml_rl.families.ares_ea.evaluation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Controller = Callable[[np.ndarray], np.ndarray]
N_RECORDED = 5  # episodes whose trajectories are kept for figures


@dataclass
class ControllerStats:
    """Outcome of n episodes of one controller on one task.

    Attributes
    ----------
    lengths, returns, success, final_reward
        Per episode.
    trajectories
        For the first ``N_RECORDED`` episodes: dicts with ``obs`` (T+1, obs_dim),
        ``kicks`` (T+1, ...) (the controlled settings: AWAKE corrector kicks [rad]),
        ``actions`` (T, act_dim) (as applied), ``rewards`` (T,).
    final_distance
        Per episode, the distance to the target at its end where the family defines one
        (ARES-EA: the objective O [m]); ``None`` otherwise.
    """

    lengths: np.ndarray
    returns: np.ndarray
    success: np.ndarray
    final_reward: np.ndarray
    trajectories: list[dict[str, np.ndarray]] = field(default_factory=list)
    final_distance: np.ndarray | None = None

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths))

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    def summary(self) -> dict[str, float]:
        out = {"success_rate": self.success_rate, "mean_length": self.mean_length, "mean_return": self.mean_return}
        if self.final_distance is not None:
            # The median: an episode that loses the beam ends with a meaningless, huge distance.
            out["median_final_distance"] = float(np.median(self.final_distance))
        return out


@dataclass
class Evaluation:
    """A policy and the references on the same initial states of one task.

    ``initial_kicks`` holds the initial states (AWAKE: corrector kicks (n, 10); ARES-EA:
    settings and targets (n, 9)).

    ``nominal`` is the nominal-inverse controller (the benchmark's law with the nominal
    optics' response matrix: what an operator without a model of today's optics would do).
    """

    task: Any
    initial_kicks: np.ndarray
    policy: ControllerStats | None
    benchmark: ControllerStats | None
    limit: ControllerStats | None
    nominal: ControllerStats | None = None

    def length_ratio(self) -> float:
        """Mean episode length of the policy relative to the benchmark's."""
        if self.policy is None or self.benchmark is None:
            raise ValueError("needs both the policy and the benchmark")
        return self.policy.mean_length / self.benchmark.mean_length

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task_id": self.task.id}
        for name in ("policy", "benchmark", "limit", "nominal"):
            stats = getattr(self, name)
            if stats is not None:
                out.update({f"{name}_{k}": v for k, v in stats.summary().items()})
        return out
