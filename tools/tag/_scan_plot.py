r"""The figure of a training scan (:mod:`tools.tag.scan`): the ranking metric against one scanned parameter.

The x axis is the first numeric scanned parameter (else the first one, as categories), logarithmic when its
values are positive and span a factor of ten or more (learning rates); every combination of the other scanned
parameters is one line. A companion metric (the test AUC beside the validation AUC) is drawn dashed in the same
colour; the best point is a star.
"""

from __future__ import annotations

from typing import Any

__all__ = ["scan_figure"]

_MAX_LEGEND = 12


def scan_figure(rows: list[Any], scanned: list[str], metric: str, companion: str | None, best: Any,
                title: str) -> Any:
    """The scan's figure for ``rows`` (:class:`~tools.tag.scan.ScanPoint`); returns a matplotlib Figure."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    x_name = _x_parameter(rows, scanned)
    others = [name for name in scanned if name != x_name]
    position = _positions(rows, x_name)
    figure = Figure(figsize=(6.4, 4.0))
    ax = figure.subplots()
    groups = _groups(rows, others)
    for colour, (label, group) in enumerate(groups.items()):
        members = sorted(group, key=lambda row: position(row.parameters[x_name]))
        xs = [position(row.parameters[x_name]) for row in members]
        ax.plot(xs, [row.metrics[metric] for row in members], marker="o", color=f"C{colour % 10}",
                label=label or metric)
        if companion is not None:
            ax.plot(xs, [row.metrics[companion] for row in members], marker="o", mfc="none", ls="--",
                    color=f"C{colour % 10}")
    ax.plot([position(best.parameters[x_name])], [best.metrics[metric]], marker="*", ms=16, color="gold",
            mec="black", ls="none", zorder=5)
    handles, _ = ax.get_legend_handles_labels()
    extra = [Line2D([], [], marker="*", ms=12, color="gold", mec="black", ls="none",
                    label=f"best (point {best.point})")]
    if companion is not None:
        extra.append(Line2D([], [], marker="o", mfc="none", ls="--", color="grey", label=f"{companion} (dashed)"))
    if len(groups) <= _MAX_LEGEND:
        ax.legend(handles=[*handles, *extra], fontsize=7, loc="best")
    _x_axis(ax, rows, x_name)
    ax.set_ylabel(metric if companion is None else f"{metric} (solid), {companion} (dashed)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _x_parameter(rows: list[Any], scanned: list[str]) -> str:
    numeric = [name for name in scanned if all(_is_number(row.parameters[name]) for row in rows)
               and len({row.parameters[name] for row in rows}) > 1]
    return numeric[0] if numeric else scanned[0]


def _positions(rows: list[Any], name: str) -> Any:
    """Where a value sits on the x axis: itself for numbers, its index in grid order for categories."""
    values = [row.parameters[name] for row in rows]
    if all(_is_number(value) for value in values):
        return float
    order = list(dict.fromkeys(repr(value) for value in values))
    return lambda value: float(order.index(repr(value)))


def _x_axis(ax: Any, rows: list[Any], name: str) -> None:
    values = [row.parameters[name] for row in rows]
    if all(_is_number(value) for value in values):
        low, high = min(values), max(values)
        if low > 0 and high >= 10 * low:
            ax.set_xscale("log")
    else:
        labels = list(dict.fromkeys(repr(value) for value in values))
        ax.set_xticks(range(len(labels)), [label.strip("'") for label in labels])
    ax.set_xlabel(name)


def _groups(rows: list[Any], others: list[str]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for row in rows:
        label = ", ".join(f"{name}={row.parameters[name]!r}" for name in others)
        groups.setdefault(label, []).append(row)
    return groups


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
