"""The limit and Nelder-Mead on the evaluation tasks, from identical initial states.

    python -m maml_rl.families.ares_ea.reference_table                  # 4 episodes per task
    python -m maml_rl.families.ares_ea.reference_table --episodes 10 --budget 300 --action-mode direct

Episode e of task i draws its target and initial settings from the generator keyed by
(seed, i, e), exactly as the environments do (``sample_initial_states``). Printed per task:
the objective at reset O_0, the limit's best objective and fewest steps to success, and
Nelder-Mead's best objective after ``budget`` interactions, how many episodes it brought
within the thresholds and the median number of interactions it needed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class EpisodeReferences:
    """Both references on one episode (objectives in metres)."""

    task_id: int
    initial_objective: float
    limit_objective: float
    limit_steps: int | None
    limit_path_on_screen: bool
    nelder_mead_objective: float
    nelder_mead_success_interaction: int | None
    nelder_mead_interactions: int


def evaluate_references(tasks: Sequence, episodes: int, dynamics, budget: int = 150, seed: int = 0,
                        starts: int = 8, iterations: int = 40) -> list[EpisodeReferences]:
    """Run the limit and Nelder-Mead on ``episodes`` episodes of every task."""
    from maml_rl.families.ares_ea.batched import sample_initial_states
    from maml_rl.families.ares_ea.references import limit, nelder_mead
    from maml_rl.families.ares_ea.segment import AresSegment
    from maml_rl.families.ares_ea.tasks import task_arrays

    segment = AresSegment()
    rows = []
    for task in tasks:
        beams, shifts = task_arrays([task])
        for e in range(episodes):
            rng = np.random.default_rng([seed, task.id, e])
            targets, magnets = sample_initial_states([rng], beams, shifts, dynamics, segment)
            target, m0 = targets[0], magnets[0]
            o0 = float(dynamics.objective(segment.screen_beam_numpy(m0[None], beams, shifts), target[None])[0])
            lim = limit(segment, task, target, m0, dynamics, rng, starts=starts, iterations=iterations)
            nm = nelder_mead(segment, task, target, m0, dynamics, max_interactions=budget)
            rows.append(EpisodeReferences(task.id, o0, lim.best_objective, lim.steps, lim.path_on_screen,
                                          nm.best_objective, nm.success_interaction, nm.interactions))
    return rows


def format_table(rows: Sequence[EpisodeReferences], budget: int) -> str:
    lines = [f"{'task':>4} | {'O_0 [um]':>9} | {'limit O [um]':>12} | {'limit steps':>11} | "
             f"{'NM O [um]':>9} | {'NM success':>10} | {'NM interactions to success':>26}"]
    for task_id in sorted({r.task_id for r in rows}):
        mine = [r for r in rows if r.task_id == task_id]
        steps = [r.limit_steps for r in mine if r.limit_steps is not None]
        wins = [r.nelder_mead_success_interaction for r in mine if r.nelder_mead_success_interaction is not None]
        lines.append(
            f"{task_id:>4} | {np.median([r.initial_objective for r in mine]) * 1e6:9.0f} | "
            f"{np.median([r.limit_objective for r in mine]) * 1e6:12.2f} | "
            f"{(f'{np.mean(steps):.2f}' if steps else '-'):>6} ({len(steps)}/{len(mine)}) | "
            f"{np.median([r.nelder_mead_objective for r in mine]) * 1e6:9.1f} | {len(wins):>4}/{len(mine):<5} | "
            f"{(f'{np.median(wins):.0f}' if wins else f'> {budget}'):>26}")
    lines.append("(medians over episodes; limit steps: mean over episodes where success is reachable)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from maml_rl.families.ares_ea.dynamics import AresDynamics
    from maml_rl.families.ares_ea.tasks import DEFAULT_TASK_FILE, TaskFileError, load_evaluation_tasks

    parser = argparse.ArgumentParser(prog="python -m maml_rl.families.ares_ea.reference_table",
                                     description="Limit vs Nelder-Mead on the ARES-EA evaluation tasks.")
    parser.add_argument("--tasks-file", type=Path, default=DEFAULT_TASK_FILE)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--budget", type=int, default=150, help="Nelder-Mead interactions per episode")
    parser.add_argument("--action-mode", choices=("delta", "direct"), default="delta")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--starts", type=int, default=8, help="limit: starts per box")
    parser.add_argument("--iterations", type=int, default=40, help="limit: Levenberg-Marquardt iterations")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        tasks = load_evaluation_tasks(args.tasks_file)
    except TaskFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rows = evaluate_references(tasks, args.episodes, AresDynamics(action_mode=args.action_mode), args.budget,
                               args.seed, args.starts, args.iterations)
    print(format_table(rows, args.budget))
    print(f"({args.episodes} episodes per task, {args.action_mode} mode, {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
