r"""``scan_training``: train a tagger or a generator at every point of a hyper-parameter grid and rank the points.

Every point is one ordinary ``train_tagger`` or ``train_generator`` call in the scan's workspace
(:mod:`tools.tag._scan_points`): its model is an ordinary artifact with its own model card and provenance
record, and the call cache answers a point trained before, so running a failed or cancelled scan again trains
only the points that did not finish. Every point trains with the scan's seed, so points differ only by their
parameters.

Where the points run: without a cluster one after another in this process; with a Dask cluster
(``PHYSAGENT_CLUSTER``, :mod:`tools._cluster`) each point is a task on a worker, which opens the workspace by
its path — the workspace must lie on a filesystem every worker mounts at the same path (the scheduler and the
workers share its files and its SQLite index). A point whose worker dies runs once more; a point crashing
twice, or whose training refuses or fails (not retried: it would fail the same way), fails the scan with an
error naming its parameters, after the other points finished (their models stay).
Progress: one bar over the points, each advancing with its training's epochs; a cancelled scan cancels the
points not yet finished.

Ranking: by ``metric``. For taggers the default is the validation AUC at the kept epoch: choosing by a
test-split number and quoting the same number is optimistic, since the test jets took part in the choice.
Generators rank by their lowest validation loss (NLL per sample, lower is better).

Output: a ``table`` artifact, ``points.parquet`` with one row per point (the scanned values and every metric;
the model ids, wall times, workers and attempts are provenance and go into the artifact record, as
``metadata["execution"]``, so the file and its hash are the same wherever the points ran), and a ``plot``
artifact, ``scan.png``: the metric against a scanned parameter, one line per combination of the others.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._cluster import cluster_client, executor_record
from physagent.tools._context import ProgressTask, ToolContext
from physagent.tools._errors import ToolCancelledError, ToolError, ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolResult, registry, tool
from physagent.tools.tag._scan_points import (
    LOWER_IS_BETTER,
    MAX_POINTS,
    TOOL,
    TRAINERS,
    KeptInWorkspace,
    Point,
    PointFailure,
    PointRun,
    plan_points,
    point_task,
    scan_failure,
    train_point,
)

__all__ = ["ScanPoint", "TrainingScan", "scan_training"]

TrainingDataRef = Annotated[str, Accepts(("dataset", "table", "jets", "events", "showers")),
                            Field(pattern=ARTIFACT_ID_PATTERN)]
TrainerName = Literal["train_tagger", "train_generator"]
Metric = Literal["auto", "validation_auc", "validation_loss", "test_auc", "test_rejection_at_30",
                 "test_rejection_at_50", "test_accuracy"]
Value = bool | int | float | str | list[str] | None
IN_PROCESS = "in-process"
_COMPANIONS = {"validation_auc": "test_auc", "test_auc": "validation_auc"}  # drawn beside the ranking metric


class ScanPoint(BaseModel):
    """One trained point of the grid."""

    point: int = Field(description="Position in the grid, from 1 (first grid parameter slowest).")
    parameters: dict[str, Value] = Field(description="The scanned values, as the trainer read them.")
    metrics: dict[str, float] = Field(description="The point's metrics: for taggers validation_auc and "
                                                  "validation_loss (at the kept epoch) and the test-split AUC, "
                                                  "rejections and accuracy; for generators validation_loss.")
    model: str = Field(description="Id of the point's model (tagger) or generator artifact.")
    cached: bool = Field(description="Answered by the call cache: trained by an earlier call.")
    wall_s: float = Field(description="Wall time of the point's training call in seconds, where it ran.")
    worker: str = Field(description="Where it ran: the Dask worker's address, or 'in-process'.")
    attempts: int = Field(description="Attempts it took (2: its first worker died or it failed once).")


class TrainingScan(ToolResult):
    """The points of a hyper-parameter scan, the best one, and where they ran."""

    trainer: str = Field(description="The training tool of every point: train_tagger or train_generator.")
    metric: str = Field(description="The metric that ranks the points.")
    higher_is_better: bool = Field(description="True when a larger metric is better (AUC), False for a loss.")
    best_parameters: dict[str, Value] = Field(description="The scanned values of the best point.")
    best_value: float = Field(description="The ranking metric of the best point.")
    best_validation_auc: float | None = Field(description="Taggers: the best point's validation AUC at its kept "
                                                          "epoch (None for generators).")
    best_test_auc: float | None = Field(description="Taggers: the best point's test-split AUC (None for generators).")
    best_metrics: dict[str, float] = Field(description="Every metric of the best point, e.g. its "
                                                       "test_rejection_at_50.")
    best_model: str = Field(description="Id of the best point's model artifact: pass it to the next tool.")
    n_points: int = Field(description="Points trained (grid combinations).")
    n_cached: int = Field(description="Points the call cache answered (trained by an earlier call).")
    scanned: list[str] = Field(description="The scanned parameter names, in grid order.")
    executor: str = Field(description="Where the points ran: in-process or the Dask cluster.")
    wall_s: float = Field(description="Wall time of the whole scan in seconds.")
    table: str = Field(description="The points as a Markdown table.")
    points_table: Artifact = Field(description="Table artifact (kind 'table'): points.parquet, one row per point "
                                               "with the scanned values and metrics.")
    plot: Artifact = Field(description="Plot artifact: scan.png, the metric against the scanned parameter(s).")
    warnings: list[str] = Field(description="E.g. the best point at the edge of the grid, ties, or ranking by a "
                                            "test-split metric.")
    points: list[ScanPoint] = Field(description="Every point, in grid order.")


@tool(category="tag", version="1")
def scan_training(
    dataset: Annotated[TrainingDataRef, Field(description=(
        "Id of the training data: a dataset from make_jet_dataset (train_tagger), or the table, jets, events or "
        "showers artifact a generator learns (train_generator's source)."))],
    grid: Annotated[dict[str, Annotated[list[Value], Field(min_length=1, max_length=MAX_POINTS)]], Field(
        description=("The trainer's parameters to scan, each with its values, e.g. {'learning_rate': [0.001, "
                     f"0.003], 'size': ['tiny', 'small']}}: every combination is one training (at most {MAX_POINTS})."
                     ))],
    trainer: Annotated[TrainerName, Field(
        description="train_tagger (jet taggers) or train_generator (normalizing flows, CaloFlow, point clouds).",
        json_schema_extra={"x-phrases": {"tagger": "train_tagger", "generator": "train_generator",
                                         "normalizing flow": "train_generator", "surrogate": "train_generator"}},
    )] = "train_tagger",
    fixed: Annotated[dict[str, Value], Field(description=(
        "The trainer's other arguments, the same at every point, e.g. {'model': 'mlp', 'epochs': 30}; not the "
        "data (give it as dataset) and not the seed."))] = {},  # noqa: B006 — pydantic copies defaults
    metric: Annotated[Metric, Field(description=(
        "What ranks the points: auto (taggers: validation_auc at the kept epoch; generators: validation_loss), "
        "validation_auc, validation_loss (lower is better), or a test-split number (test_auc, "
        "test_rejection_at_30/50, test_accuracy: optimistic when it also chooses the point)."))] = "auto",
    seed: Annotated[int, Field(ge=0, description="Seed of every point's training: points differ only by their "
                                                 "parameters.")] = 0,
    *,
    ctx: ToolContext,
) -> TrainingScan:
    """Scan a tagger's or generator's training over a grid of hyper-parameters and report the best point.

    Every combination of the grid values is one train_tagger (or train_generator) call with its own model
    artifact; returns the table of points with their metrics, a plot, and the best point's parameters, metric
    and model. Runs the points on the Dask cluster when one is configured, else one after another.
    """
    spec = registry.get(trainer)
    source = _training_data(trainer, ctx.artifact(dataset, "dataset"))
    chosen = _metric(trainer, metric)
    points = plan_points(spec, fixed, grid, source.id, seed)
    start = time.perf_counter()
    client = cluster_client()
    rows: list[ScanPoint] = []  # filled as points finish, so a cancellation can say how far the scan got
    failures: list[tuple[Point, ToolError]] = []
    try:
        with ctx.progress(f"{trainer}: {len(points)} points of {', '.join(grid)}", total=len(points),
                          unit="points") as bar:
            run = _on_dask if client is not None else _in_process
            run(client, ctx, trainer, points, bar, rows, failures)
    except ToolCancelledError:
        raise _cancelled(len(rows), len(points)) from None
    if failures:
        raise scan_failure(failures, len(rows), ctx.workspace.root)
    return _result(ctx, trainer, chosen, source, fixed, grid, seed, rows, time.perf_counter() - start,
                   client is not None)


def _training_data(trainer: str, source: Artifact) -> Artifact:
    param = TRAINERS[trainer].data_param
    kinds = registry.get(trainer).artifact_params[param]
    if source.kind not in kinds:
        other = "train_generator" if trainer == "train_tagger" else "train_tagger"
        raise ToolInputError.for_param(TOOL, "dataset", source.id, f"is a {source.kind} artifact; {trainer} trains "
                                       f"on {' or '.join(kinds)}. Give such an artifact, or set trainer='{other}'.")
    return source


def _metric(trainer: str, metric: str) -> str:
    offered = TRAINERS[trainer].metrics
    if metric == "auto":
        return offered[0]
    if metric not in offered:
        raise ToolInputError.for_param(TOOL, "metric", metric, f"is not a result of {trainer}; it offers "
                                       f"{', '.join(offered)}. Use one of those (or 'auto').")
    return metric


# --- running the points ---------------------------------------------------------------------------------


def _in_process(client: Any, ctx: ToolContext, trainer: str, points: list[Point], bar: ProgressTask,
                rows: list[ScanPoint], failures: list[tuple[Point, ToolError]]) -> None:
    """The points one after another; a failed point does not stop the others (their models are worth keeping)."""
    for point in points:
        ctx.check_cancelled()
        try:
            run = train_point(ctx.workspace, trainer, point.arguments, ctx.session, bar.advance, ctx.cancel_event)
        except ToolCancelledError:
            raise
        except ToolError as error:
            failures.append((point, error))
            bar.advance(point.index + 1 - bar.completed)  # the bar counts the point as done
            continue
        rows.append(_row(point, run, IN_PROCESS, 1))
        bar.unit = f"points ({_last(rows[-1])})"


def _on_dask(client: Any, ctx: ToolContext, trainer: str, points: list[Point], bar: ProgressTask,
             rows: list[ScanPoint], failures: list[tuple[Point, ToolError]]) -> None:
    """The points as Dask tasks; a cancellation (raised by ``bar.advance`` or between points) cancels the rest."""
    from physagent.tools._cluster_run import ClusterTask, ClusterTaskError, run_on_cluster

    root = ctx.workspace.root
    tasks = [ClusterTask(point_task, (str(root), trainer, point.arguments, ctx.session), point.label)
             for point in points]
    try:
        for outcome in run_on_cluster(client, tasks, bar.advance, KeptInWorkspace(root), check=ctx.check_cancelled):
            point = points[outcome.index]
            if isinstance(outcome.value, PointFailure):
                failures.append((point, outcome.value.error))
                bar.advance(max(0.0, 1.0 - outcome.reported))  # the bar counts the point as done
                continue
            rows.append(_row(point, outcome.value, outcome.worker, outcome.attempts))
            bar.unit = f"points ({_last(rows[-1])})"
            ctx.check_cancelled()
    except ClusterTaskError as error:  # a crash twice (dead workers): the message names the point
        raise ToolRuntimeError(f"{TOOL}: {error} The scan's table was not written.") from error


def _row(point: Point, run: PointRun, worker: str, attempts: int) -> ScanPoint:
    return ScanPoint(point=point.index + 1, parameters=point.parameters, metrics=run.metrics, model=run.model,
                     cached=run.cached, wall_s=round(run.wall_s, 3), worker=worker, attempts=attempts)


def _last(row: ScanPoint) -> str:
    first_metric = next(iter(row.metrics))
    return f"last: {_describe(row.parameters)} → {first_metric} {row.metrics[first_metric]:.4g}"


def _cancelled(finished: int, total: int) -> ToolCancelledError:
    return ToolCancelledError(f"{TOOL}: cancelled by the caller after {finished} of {total} points. The finished "
                              "points' models stay in the workspace; the same scan again takes them from the call "
                              "cache and trains only the rest.")


def _describe(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in parameters.items())


# --- the result -----------------------------------------------------------------------------------------


def _result(ctx: ToolContext, trainer: str, metric: str, source: Artifact, fixed: dict[str, Any],
            grid: dict[str, list[Any]], seed: int, rows: list[ScanPoint], wall_s: float, on_dask: bool
            ) -> TrainingScan:
    higher = metric not in LOWER_IS_BETTER
    best = _best(rows, metric, higher)
    execution = _execution(rows, on_dask)
    meta = {"trainer": trainer, "dataset": source.id, "fixed": fixed, "grid": grid, "seed": seed, "metric": metric,
            "higher_is_better": higher, "best_point": best.point, "models": [row.model for row in rows],
            "execution": execution}
    summary = (f"{trainer} scan of {', '.join(grid)} on {source.id}: {len(rows)} points, best {metric} "
               f"{best.metrics[metric]:.4g} at {_describe(best.parameters)} ({best.model})")
    return TrainingScan(
        trainer=trainer, metric=metric, higher_is_better=higher, best_parameters=best.parameters,
        best_value=best.metrics[metric], best_validation_auc=best.metrics.get("validation_auc"),
        best_test_auc=best.metrics.get("test_auc"), best_metrics=best.metrics, best_model=best.model,
        n_points=len(rows), n_cached=sum(row.cached for row in rows), scanned=list(grid),
        executor=_executor_text(execution),
        wall_s=round(wall_s, 3), table=_markdown(rows, list(grid), metric, best),
        points_table=_write_table(ctx, rows, list(grid), summary, meta),
        plot=_write_plot(ctx, rows, list(grid), metric, best, source, meta),
        warnings=_warnings(trainer, rows, grid, metric, best), points=rows)


def _best(rows: list[ScanPoint], metric: str, higher: bool) -> ScanPoint:
    """The best point; the first in grid order among equals."""
    sign = 1.0 if higher else -1.0
    return max(rows, key=lambda row: (sign * row.metrics[metric], -row.point))


def _execution(rows: list[ScanPoint], on_dask: bool) -> dict[str, Any]:
    where = executor_record() if on_dask else {"executor": IN_PROCESS}
    return where | {"points": [{"point": row.point, "model": row.model, "worker": row.worker,
                                "attempts": row.attempts, "cached": row.cached, "wall_s": row.wall_s}
                               for row in rows]}


def _executor_text(execution: dict[str, Any]) -> str:
    if execution["executor"] != "dask":
        return IN_PROCESS
    return f"Dask {execution['cluster']} cluster, scheduler {execution['scheduler']}"


def _warnings(trainer: str, rows: list[ScanPoint], grid: dict[str, list[Any]], metric: str, best: ScanPoint
              ) -> list[str]:
    found = []
    if metric.startswith("test_"):
        found.append(f"ranked by {metric}, a test-split number: the best point's {metric} is optimistic, since the "
                     "test jets chose it. Rank by validation_auc and quote the test AUC of the point it picks.")
    ties = [row.point for row in rows if row.metrics[metric] == best.metrics[metric]]
    if len(ties) > 1:
        found.append(f"points {', '.join(map(str, ties))} tie at the best {metric}; the first is reported.")
    for name in grid:
        found += _at_the_edge(name, [row.parameters[name] for row in rows], best.parameters[name], metric)
    if trainer == "train_generator":
        found += _incomparable_losses(grid)
    return found


def _at_the_edge(name: str, values: list[Any], chosen: Any, metric: str) -> list[str]:
    """A warning when the best value of a numeric parameter (three values or more) is the smallest or largest."""
    numbers = sorted({float(value) for value in values if _is_number(value)})
    if len(numbers) < 3 or not _is_number(chosen) or chosen not in (numbers[0], numbers[-1]):
        return []
    side = "smallest" if chosen == numbers[0] else "largest"
    return [f"the best {metric} lies at the {side} {name} scanned ({chosen!r}): the optimum may lie beyond the "
            f"grid; extend {name} past it."]


def _incomparable_losses(grid: dict[str, list[Any]]) -> list[str]:
    """A generator's validation loss is an NLL of its own (transformed) variables on its own split: points that
    change those are not ranked fairly by it."""
    changed = [name for name in ("validation_fraction", "features", "conditions", "log_transform", "model")
               if name in grid]
    if not changed:
        return []
    return [f"scanning {', '.join(changed)} changes what the validation loss is computed on: losses of different "
            "values are not comparable, so the ranking across them means little."]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _markdown(rows: list[ScanPoint], scanned: list[str], metric: str, best: ScanPoint) -> str:
    shown = [metric, *([_COMPANIONS[metric]] if metric in _COMPANIONS else [])]
    header = ["point", *scanned, *shown, "model", "cached", "wall s", "worker", "attempts"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * (1 + len(scanned) + len(shown)) + [
        "---", ":-:", "---:", "---", "---:"]) + "|"]
    for row in rows:
        number = f"**{row.point}**" if row is best else str(row.point)
        cells = [number, *(_cell(row.parameters[name]) for name in scanned),
                 *(f"{row.metrics[name]:.4f}" for name in shown), row.model, "yes" if row.cached else "no",
                 f"{row.wall_s:.1f}", row.worker, str(row.attempts)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _write_table(ctx: ToolContext, rows: list[ScanPoint], scanned: list[str], summary: str,
                 meta: dict[str, Any]) -> Artifact:
    import awkward as ak

    from physagent.tools._io import write_parquet

    records = [{"point": row.point, **{name: row.parameters[name] for name in scanned}, **row.metrics}
               for row in rows]
    pending = ctx.new_artifact("table")
    write_parquet(ak.Array(records), pending.directory / "points.parquet")
    return pending.finish("points.parquet", summary, meta | {"n_rows": len(rows), "fields": list(records[0])})


def _write_plot(ctx: ToolContext, rows: list[ScanPoint], scanned: list[str], metric: str, best: ScanPoint,
                source: Artifact, meta: dict[str, Any]) -> Artifact:
    from physagent.tools.tag._metrics import save_png
    from physagent.tools.tag._scan_plot import scan_figure

    pending = ctx.new_artifact("plot")
    # no artifact ids in the figure: a rerun (an exported script) must draw the same bytes
    title = f"{meta['trainer']} on {source.summary}, seed {meta['seed']}"
    save_png(scan_figure(rows, scanned, metric, _COMPANIONS.get(metric), best, title), pending.directory / "scan.png")
    return pending.finish("scan.png", f"{metric} of {len(rows)} {meta['trainer']} points against "
                          f"{', '.join(scanned)} (best: point {best.point})", meta)

