"""What every tab shows beside its model: the card (data, training, measured metrics), the source report's
numbers next to ours, and the training curves from the log saved with the checkpoint."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the app renders figures for the browser, never a window
import matplotlib.pyplot as plt

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


def plot_curves(name: str, panels: dict[str, list[str]], title: str = ""):
    """One subplot per panel, each plotting the named log columns against step; None if there is no log."""
    path = log_path(name)
    if path is None:
        return None
    log = read_log(path)
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for axis, (panel, columns) in zip(axes[0], panels.items()):
        for column in columns:
            if column in log:
                valid = ~(log[column] != log[column])  # drop NaN rows (columns logged at other intervals)
                axis.plot(log["step"][valid], log[column][valid], label=column)
        axis.set_title(panel)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
