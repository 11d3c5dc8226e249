"""The verification figure: a policy against the benchmark and the limit controller.

One figure per evaluation point (several tasks): episode length per episode (policy
solid, benchmark dashed, limit dotted), cumulative episode length, cumulative reward,
final reward with the success threshold, corrector settings and BPM readings over the
first episodes (first task), success rate per task; total interactions in the title.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from maml_rl.envs.dynamics import REWARD_SCALE
from maml_rl.evaluation import ControllerStats, Evaluation
from maml_rl.plotting import new_figure, save_figure

STYLES = {"policy": "-", "benchmark": "--", "limit": ":"}


def _controllers(ev: Evaluation) -> list[tuple[str, ControllerStats]]:
    return [(name, getattr(ev, name)) for name in ("policy", "benchmark", "limit") if getattr(ev, name) is not None]


def _concatenated(trajectories: list[dict[str, np.ndarray]], key: str) -> tuple[np.ndarray, list[int]]:
    """Stack the first episodes' arrays end to end; returns values and episode boundaries."""
    parts = [t[key] for t in trajectories]
    bounds = list(np.cumsum([len(p) for p in parts]))[:-1]
    return np.concatenate(parts, axis=0), bounds


def verification_figure(evaluations: Sequence[Evaluation], path: Path, title: str, interactions: int | None = None,
                        threshold: float = 0.1) -> Path:
    """Write the verification figure of ``evaluations`` (one per task) to ``path``."""
    fig, axes = new_figure(2, 4, size=(20, 8.5))
    ax_len, ax_cum_len, ax_cum_rew, ax_final = axes[0]
    ax_kicks, ax_bpm, ax_success, ax_table = axes[1]
    colours = [f"C{i}" for i in range(len(evaluations))]
    for colour, ev in zip(colours, evaluations):
        for name, stats in _controllers(ev):
            label = f"task {ev.task.id} {name}"
            episodes = np.arange(1, len(stats.lengths) + 1)
            ax_len.plot(episodes, stats.lengths, STYLES[name], color=colour, lw=1, label=label)
            ax_cum_len.plot(episodes, np.cumsum(stats.lengths), STYLES[name], color=colour, lw=1.2)
            ax_cum_rew.plot(episodes, np.cumsum(stats.returns), STYLES[name], color=colour, lw=1.2)
            if name == "policy":
                ax_final.plot(episodes, stats.final_reward, ".", color=colour, ms=3, label=f"task {ev.task.id}")
    ax_final.axhline(-REWARD_SCALE * threshold, color="k", ls="--", lw=1, label="success threshold")
    for ax, label in ((ax_len, "episode length [steps]"), (ax_cum_len, "cumulative episode length"),
                      (ax_cum_rew, "cumulative reward"), (ax_final, "final reward of the episode")):
        ax.set_xlabel("episode")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_len.set_yscale("log")
    ax_len.legend(fontsize=6, ncol=max(1, len(evaluations) // 2))
    ax_final.legend(fontsize=7)
    first = evaluations[0]
    if first.policy is not None and first.policy.trajectories:
        kicks, bounds = _concatenated(first.policy.trajectories, "kicks")
        readings, _ = _concatenated(first.policy.trajectories, "obs")
        ax_kicks.plot(kicks * 1e3, lw=1)
        ax_bpm.plot(readings, lw=1)
        ax_bpm.axhspan(-threshold, threshold, color="g", alpha=0.1)
        for ax in (ax_kicks, ax_bpm):
            for b in bounds:
                ax.axvline(b - 0.5, color="k", lw=0.5, alpha=0.4)
            ax.set_xlabel(f"step (first {len(first.policy.trajectories)} episodes of task {first.task.id})")
            ax.grid(alpha=0.3)
        ax_kicks.set_ylabel("corrector setting [mrad]")
        ax_bpm.set_ylabel("BPM reading [obs units, 1 = 10 mm]")
    names = [n for n, _ in _controllers(first)]
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        rates = [getattr(ev, name).success_rate for ev in evaluations]
        ax_success.bar(np.arange(len(evaluations)) + j * width, rates, width, label=name,
                       hatch={"policy": "", "benchmark": "//", "limit": ".."}[name])
    ax_success.set_xticks(np.arange(len(evaluations)) + width * (len(names) - 1) / 2,
                          [f"task {ev.task.id}" for ev in evaluations])
    ax_success.set_ylim(0, 1.05)
    ax_success.set_ylabel("success rate")
    ax_success.legend(fontsize=7)
    ax_table.axis("off")
    lines = ["task  success  length  bench  limit  ratio"]
    for ev in evaluations:
        if ev.policy is None or ev.benchmark is None or ev.limit is None:
            continue
        lines.append(f"{ev.task.id:>4}  {ev.policy.success_rate:7.0%}  {ev.policy.mean_length:6.2f}  "
                     f"{ev.benchmark.mean_length:5.2f}  {ev.limit.mean_length:5.2f}  {ev.length_ratio():5.2f}")
    ax_table.text(0.0, 1.0, "\n".join(lines), family="monospace", va="top", fontsize=10,
                  transform=ax_table.transAxes)
    ax_table.set_title("mean episode length (ratio = policy / benchmark)", fontsize=9)
    suffix = f" - total environment interactions: {interactions:,}" if interactions is not None else ""
    fig.suptitle(title + suffix)
    return save_figure(fig, path)


def format_table(evaluations: Sequence[Evaluation]) -> str:
    """Per task: success rate, mean length and mean return of policy, benchmark and limit."""
    names = ("policy", "benchmark", "limit")
    header = "task | " + " | ".join(f"{name + ': success':>18} {'length':>7} {'return':>8}" for name in names) \
        + " | ratio"
    lines = [header, "-" * len(header)]
    for ev in evaluations:
        cells = [f"{s.success_rate:>18.1%} {s.mean_length:7.2f} {s.mean_return:8.2f}"
                 for s in (ev.policy, ev.benchmark, ev.limit)]
        lines.append(f"{ev.task.id:>4} | " + " | ".join(cells) + f" | {ev.length_ratio():5.2f}")
    ratios = [ev.length_ratio() for ev in evaluations]
    lines.append(f"episode length / benchmark: mean over tasks {sum(ratios) / len(ratios):.2f}, "
                 f"worst {max(ratios):.2f}")
    return "\n".join(lines)
