"""The verification figure: a policy against its family's reference controllers.

One figure per evaluation point (several tasks): distributions of the episode length
(box plots per task and controller; pooled CDFs for many tasks), cumulative episode length
and reward per episode (policy solid, benchmark dashed, limit dotted; median and band over
tasks for many tasks), final rewards with the success threshold, the controlled settings and
the observations over the first episodes (first task), success rate per task (CDF over tasks
for many), a table; total interactions in the title. The family's ``FigureStyle`` names the
references (ARES-EA: Nelder-Mead in the benchmark slot) and the axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from maml_rl.evaluation_results import ControllerStats, Evaluation
from maml_rl.families.base import FigureStyle
from maml_rl.plotting import new_figure, save_figure

STYLES = {"policy": "-", "benchmark": "--", "limit": ":"}
COLOURS = {"policy": "C0", "benchmark": "0.3", "limit": "C2"}


def _controllers(ev: Evaluation) -> list[tuple[str, ControllerStats]]:
    return [(name, getattr(ev, name)) for name in ("policy", "benchmark", "limit") if getattr(ev, name) is not None]


def _concatenated(trajectories: list[dict[str, np.ndarray]], key: str) -> tuple[np.ndarray, list[int]]:
    """Stack the first episodes' arrays end to end; returns values and episode boundaries."""
    parts = [t[key] for t in trajectories]
    bounds = list(np.cumsum([len(p) for p in parts]))[:-1]
    return np.concatenate(parts, axis=0), bounds


MANY_TASKS = 12  # above this, per-task lines and bars give way to distributions over tasks


def _awake_style(threshold: float) -> FigureStyle:
    """AWAKE's conventions (the default, for callers from before families existed)."""
    from maml_rl.families import DEFAULT_FAMILY, get_family

    return get_family(DEFAULT_FAMILY).environment({"threshold": threshold}).figure_style


def _length_distributions(ax, evaluations: Sequence[Evaluation], labels: dict[str, str]) -> None:
    """Episode lengths: box plots per task and controller, or (many tasks) pooled CDFs."""
    names = [n for n, _ in _controllers(evaluations[0])]
    if len(evaluations) <= MANY_TASKS:
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            positions = np.arange(len(evaluations)) + (j - (len(names) - 1) / 2) * width
            parts = ax.boxplot([getattr(ev, name).lengths for ev in evaluations], positions=positions,
                               widths=width * 0.9, patch_artist=True, showfliers=True, flierprops={"ms": 2},
                               medianprops={"color": "k"})
            for box in parts["boxes"]:
                box.set_facecolor(COLOURS[name])
                box.set_alpha(0.6)
            ax.plot([], [], "s", color=COLOURS[name], alpha=0.6, label=labels.get(name, name))  # legend entry
        ax.set_xticks(np.arange(len(evaluations)), [f"task {ev.task.id}" for ev in evaluations])
        ax.set_ylabel("episode length [steps]")
    else:
        for name in names:
            lengths = np.sort(np.concatenate([getattr(ev, name).lengths for ev in evaluations]))
            ax.step(lengths, np.arange(1, len(lengths) + 1) / len(lengths), where="post", color=COLOURS[name],
                    label=labels.get(name, name))
        ax.set_xlabel("episode length [steps] (all episodes of all tasks)")
        ax.set_ylabel("fraction of episodes <= x")
    if len(evaluations) <= MANY_TASKS:
        ax.set_yscale("log")
    else:
        ax.set_xscale("log")
    ax.legend(fontsize=7)


def _curves(ax, evaluations: Sequence[Evaluation], values, label: str, labels: dict[str, str]) -> None:
    """Per-episode curves of each controller: one line per task, or (many tasks) median and 10-90 % band."""
    colours = [f"C{i % 10}" for i in range(len(evaluations))]
    for name in [n for n, _ in _controllers(evaluations[0])]:
        rows = [values(getattr(ev, name)) for ev in evaluations]
        episodes = np.arange(1, len(rows[0]) + 1)
        if len(evaluations) <= MANY_TASKS:
            for colour, ev, row in zip(colours, evaluations, rows):
                ax.plot(episodes, row, STYLES[name], color=colour, lw=1.2,
                        label=f"task {ev.task.id} {name}" if name == "policy" else None)
        else:
            stacked = np.stack(rows)
            ax.plot(episodes, np.median(stacked, 0), STYLES[name], color=COLOURS[name], lw=1.5,
                    label=f"{labels.get(name, name)}: median over tasks")
            ax.fill_between(episodes, *np.percentile(stacked, [10, 90], axis=0), color=COLOURS[name], alpha=0.15)
    ax.set_xlabel("episode")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    title = f"dashed: {labels['benchmark']}, dotted: {labels['limit']}"
    ax.legend(fontsize=6, title=title if len(evaluations) <= MANY_TASKS else None, title_fontsize=6)


def verification_figure(evaluations: Sequence[Evaluation], path: Path, title: str, interactions: int | None = None,
                        threshold: float = 0.1, style: FigureStyle | None = None) -> Path:
    """Write the verification figure of ``evaluations`` (one per task) to ``path``.

    Readable for any number of tasks: with more than ``MANY_TASKS`` tasks, per-task lines,
    bars and table rows are replaced by distributions over tasks. ``style``: the family's
    ``FigureStyle`` (default: AWAKE's with success threshold ``threshold``).
    """
    style = style if style is not None else _awake_style(threshold)
    labels = {"policy": "policy", **style.reference_labels}
    fig, axes = new_figure(2, 4, size=(20, 8.5))
    ax_len, ax_cum_len, ax_cum_rew, ax_final = axes[0]
    ax_kicks, ax_bpm, ax_success, ax_table = axes[1]
    many = len(evaluations) > MANY_TASKS
    _length_distributions(ax_len, evaluations, labels)
    _curves(ax_cum_len, evaluations, lambda stats: np.cumsum(stats.lengths), "cumulative episode length", labels)
    _curves(ax_cum_rew, evaluations, lambda stats: np.cumsum(stats.returns), "cumulative reward", labels)
    final = [ev.policy.final_reward for ev in evaluations if ev.policy is not None]
    if final and many:
        ax_final.hist(np.concatenate(final), bins=40, color=COLOURS["policy"], alpha=0.7, label="policy, all tasks")
        ax_final.set_xlabel("final reward of the episode")
        ax_final.set_ylabel("episodes")
        if style.success_reward is not None:
            ax_final.axvline(style.success_reward, color="k", ls="--", lw=1, label="success threshold")
    else:
        for i, (ev, values) in enumerate(zip(evaluations, final)):
            ax_final.plot(np.arange(1, len(values) + 1), values, ".", color=f"C{i % 10}", ms=3,
                          label=f"task {ev.task.id}")
        if style.success_reward is not None:
            ax_final.axhline(style.success_reward, color="k", ls="--", lw=1, label="success threshold")
        ax_final.set_xlabel("episode")
        ax_final.set_ylabel("final reward of the episode")
    ax_final.grid(alpha=0.3)
    ax_final.legend(fontsize=7)
    first = evaluations[0]
    if first.policy is not None and first.policy.trajectories:
        kicks, bounds = _concatenated(first.policy.trajectories, "kicks")
        readings, _ = _concatenated(first.policy.trajectories, "obs")
        ax_kicks.plot(kicks * style.state_scale, lw=1)
        ax_bpm.plot(readings, lw=1)
        if style.success_band is not None:
            ax_bpm.axhspan(-style.success_band, style.success_band, color="g", alpha=0.1)
        for ax in (ax_kicks, ax_bpm):
            for b in bounds:
                ax.axvline(b - 0.5, color="k", lw=0.5, alpha=0.4)
            ax.set_xlabel(f"step (first {len(first.policy.trajectories)} episodes of task {first.task.id})")
            ax.grid(alpha=0.3)
        ax_kicks.set_ylabel(style.state_label)
        ax_bpm.set_ylabel(style.obs_label)
    names = [n for n, _ in _controllers(first)]
    if many:
        for name in names:
            rates = np.sort([getattr(ev, name).success_rate for ev in evaluations])
            ax_success.step(rates, np.arange(1, len(rates) + 1) / len(rates), where="post", color=COLOURS[name],
                            label=labels.get(name, name))
        ax_success.set_xlabel("success rate (per task)")
        ax_success.set_ylabel("fraction of tasks <= x")
        ax_success.set_xlim(-0.02, 1.02)
    else:
        width = 0.8 / max(1, len(names))
        for j, name in enumerate(names):
            rates = [getattr(ev, name).success_rate for ev in evaluations]
            ax_success.bar(np.arange(len(evaluations)) + j * width, rates, width, label=labels.get(name, name),
                           color=COLOURS[name], alpha=0.7)
        ax_success.set_xticks(np.arange(len(evaluations)) + width * (len(names) - 1) / 2,
                              [f"task {ev.task.id}" for ev in evaluations])
        ax_success.set_ylim(0, 1.05)
        ax_success.set_ylabel("success rate")
    ax_success.legend(fontsize=7)
    ax_table.axis("off")
    complete = [ev for ev in evaluations if ev.policy is not None and ev.benchmark is not None
                and ev.limit is not None]
    if many and complete:
        from maml_rl.distribution import summarise

        s = summarise(complete)
        lines = [f"{len(complete)} tasks, policy:", f"success >= 95 %: {s.fraction_ge_95:.1%} of tasks",
                 f"success = 100 %: {s.fraction_100:.1%} of tasks", f"worst task:      {s.worst_success:.1%}",
                 "", f"length / {labels['benchmark']}",
                 f"  median {s.ratio_benchmark_median:.2f}  p90 {s.ratio_benchmark_p90:.2f}  max "
                 f"{s.ratio_benchmark_max:.2f}", f"length / {labels['limit']}",
                 f"  median {s.ratio_limit_median:.2f}  p90 {s.ratio_limit_p90:.2f}  max {s.ratio_limit_max:.2f}"]
        ax_table.set_title("policy across tasks", fontsize=9)
    else:
        lines = [f"task  success  length  {labels['benchmark'][:5]:>5}  limit  ratio"]
        for ev in complete:
            lines.append(f"{ev.task.id:>4}  {ev.policy.success_rate:7.0%}  {ev.policy.mean_length:6.2f}  "
                         f"{ev.benchmark.mean_length:5.2f}  {ev.limit.mean_length:5.2f}  {ev.length_ratio():5.2f}")
        ax_table.set_title(f"mean episode length (ratio = policy / {labels['benchmark']})", fontsize=9)
    ax_table.text(0.0, 1.0, "\n".join(lines), family="monospace", va="top", fontsize=10,
                  transform=ax_table.transAxes)
    suffix = f" - total environment interactions: {interactions:,}" if interactions is not None else ""
    fig.suptitle(title + suffix)
    return save_figure(fig, path)


def format_table(evaluations: Sequence[Evaluation], labels: Mapping[str, str] | None = None) -> str:
    """Per task: success rate, mean length and mean return of policy, benchmark and limit
    (``labels``: the family's names of the references, e.g. ARES-EA's "Nelder-Mead")."""
    labels = labels or {}
    names = ("policy", labels.get("benchmark", "benchmark"), labels.get("limit", "limit"))
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


def format_overall(evaluations: Sequence[Evaluation], labels: Mapping[str, str] | None = None) -> str:
    """One line per controller over all tasks: mean success rate, mean episode length and, where
    the family records it (ARES-EA: the objective O at the episode's end, in um), the median
    over tasks of each task's median final distance."""
    labels = labels or {}
    lines = []
    for name in ("policy", "benchmark", "limit"):
        stats = [getattr(ev, name) for ev in evaluations]
        if any(s is None for s in stats):
            continue
        line = (f"{labels.get(name, name):>12}: success {np.mean([s.success_rate for s in stats]):6.1%}, "
                f"length {np.mean([s.mean_length for s in stats]):6.2f}")
        if all(s.final_distance is not None for s in stats):
            distance = np.median([np.median(s.final_distance) for s in stats]) * 1e6
            line += f", median final distance {distance:.0f} um"
        lines.append(line)
    return f"over {len(evaluations)} tasks:\n" + "\n".join(lines)
