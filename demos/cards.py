"""What every tab shows beside its model: the card (data, training, measured metrics), the source report's
numbers next to ours, and the training curves from the log saved with the checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from models import registry
from models.registry import read_log


def format_number(value, percent: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{100 * value:.1f} %" if percent else f"{value:.4g}"


def comparison_table(rows: list[tuple[str, object, object, object]], headers=("metric", "report", "paper", "ours"), percent: bool = True) -> str:
    """Markdown table; each row is (metric, report, paper, ours), numbers as fractions when `percent`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for metric, *values in rows:
        lines.append("| " + " | ".join([metric] + [format_number(value, percent) for value in values]) + " |")
    return "\n".join(lines)


def card_summary(name: str) -> str:
    """One paragraph: what produced checkpoint `name` and how its metrics were measured."""
    try:
        card = registry.load_card(name)
    except (registry.CheckpointError, OSError) as error:
        return f"*{error}*"
    data = card.get("data", {})
    data_text = ", ".join(f"{key}: {value}" for key, value in data.items()) if isinstance(data, dict) else str(data)
    minutes = card.get("wall_time_s", 0) / 60
    evaluation = card.get("evaluation_command")
    text = (
        f"**`{name}`**: trained {card.get('steps', '?')} steps in {minutes:.0f} min on {card.get('hardware', '?')}, "
        f"seed {card.get('seed', '?')}. Data: {data_text}."
    )
    if evaluation:
        text += f" Metrics measured by `{evaluation}`."
    return text


def log_path(name: str) -> Path | None:
    path = registry.checkpoint_root() / name / "log.csv"
    return path if path.exists() else None


def new_figure(size: tuple[float, float]) -> Figure:
    """A figure of its own, outside pyplot: pyplot keeps every figure in one global registry that requests in
    worker threads would share (not thread-safe, and never emptied unless closed). Tight layout at draw time."""
    return Figure(figsize=size, layout="tight")


def cumulative_steps(steps: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The log's steps on one cumulative axis, and the row where each continuation starts.

    A checkpoint continued with `--init-from` keeps one log, and each continuation numbers its steps on from its
    parent's own step count, not from the total: cyclegan-apple2orange logs 100 … 9,416, then 2,812 … 7,623, then
    5,011 … 13,081 (runs of 6,704 + 2,712, 4,911 and 8,170 steps). A step lower than the one before starts a new
    segment, placed one logging interval after the end of the previous one (here: 22,497 steps in all, the sum of
    the card's chain)."""
    steps = np.asarray(steps, dtype=float)
    starts = [0] + [row for row in range(1, len(steps)) if steps[row] < steps[row - 1]]
    cumulative = steps.copy()
    for index, start in enumerate(starts[1:], start=1):
        stop = starts[index + 1] if index + 1 < len(starts) else len(steps)
        segment = steps[start:stop]
        gaps = np.diff(segment)
        interval = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else float(segment[0])
        cumulative[start:stop] = segment - (segment[0] - interval) + cumulative[start - 1]
    return cumulative, starts


def plot_curves(name: str, panels: dict[str, list[str]], title: str = "") -> Figure | None:
    """One subplot per panel, each plotting the named log columns against the cumulative step; None if there is no
    log. Each continuation of the run is its own line segment (no line drawn back across runs), after a dotted
    vertical line."""
    path = log_path(name)
    if path is None:
        return None
    log = read_log(path)
    steps, starts = cumulative_steps(log["step"])
    bounds = list(zip(starts, starts[1:] + [len(steps)]))
    figure = new_figure((5 * len(panels), 3.2))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (panel, columns) in zip(axes[0], panels.items()):
        for column in columns:
            if column not in log:
                continue
            colour = None
            for start, stop in bounds:
                values, x = log[column][start:stop], steps[start:stop]
                valid = ~np.isnan(values)  # columns logged at other intervals are NaN elsewhere
                line, = axis.plot(x[valid], values[valid], color=colour, label=column if colour is None else None)
                colour = line.get_color()
        for start in starts[1:]:
            axis.axvline(steps[start], color="gray", linestyle=":", linewidth=1)
        axis.set_title(panel)
        axis.set_xlabel("step" if len(starts) == 1 else "step, cumulative (dotted: a continued run starts)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return figure
