"""The furniture every tab shows, declared once per system and rendered the same way everywhere.

A system declares its headline numbers as `Metric`s (which card, which key, the report's value); the overview
tab and the system's own tab render them from the cards, so a number shown anywhere in the app is the one the
evaluation command wrote. `About` holds the rest of the furniture: citation and dataset licence.

    HEADLINE = [Metric("MNIST-M test accuracy, adapted", "pixelda-adapted", "mnist_m_test_accuracy", report=0.96)]
    kit.headline_text(HEADLINE)       # 'MNIST-M test accuracy, adapted 95.7 % (report 96.0 %)'
    kit.metrics_table(HEADLINE)       # Markdown: metric | report | ours
"""

from __future__ import annotations

import dataclasses

from models import registry


@dataclasses.dataclass(frozen=True)
class Metric:
    """One measured number: `key` is a dotted path into checkpoint `checkpoint`'s card metrics."""

    label: str
    checkpoint: str
    key: str
    report: float | str | None = None  # the course report's number (a fraction when `percent`), or a phrase
    percent: bool = True
    lower_is_better: bool = False

    def ours(self) -> float | None:
        """The card's value, or None when the checkpoint, its card or the key is missing."""
        try:
            value = registry.load_card(self.checkpoint).get("metrics", {})
        except (registry.CheckpointError, OSError, ValueError):  # missing, unreadable or not JSON
            return None
        for part in self.key.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value if isinstance(value, (int, float)) else None


@dataclasses.dataclass(frozen=True)
class About:
    """What a tab says about where its models and data come from."""

    citation: str  # the papers, Markdown
    dataset: str  # the dataset, its citation and licence, Markdown

    def markdown(self) -> str:
        return f"**Method:** {self.citation}\n\n**Data:** {self.dataset}"


def format_value(value, percent: bool) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{100 * value:.1f} %" if percent else f"{value:.3g}"


def headline_text(metrics: list[Metric]) -> str:
    """One line for the overview: each metric as 'label ours (report X)'; metrics without a card value are left out."""
    parts = []
    for metric in metrics:
        ours = metric.ours()
        if ours is None:
            continue
        report = f" (report {format_value(metric.report, metric.percent)})" if metric.report is not None else ""
        parts.append(f"{metric.label} {format_value(ours, metric.percent)}{report}")
    return "; ".join(parts)


def metrics_table(metrics: list[Metric]) -> str:
    """Markdown table of the report's numbers beside ours, read from the cards."""
    lines = ["| metric | report | ours |", "|---|---|---|"]
    for metric in metrics:
        lines.append(f"| {metric.label} | {format_value(metric.report, metric.percent)} | {format_value(metric.ours(), metric.percent)} |")
    return "\n".join(lines)
