r"""The points of a training scan: the grid checked and expanded, one training per point, in this process or
as Dask tasks. The tool is :mod:`tools.tag.scan`.

A point is one ordinary ``call_tool(trainer, fixed | point)`` in the scan's workspace, so its model is an
ordinary artifact with its own card and provenance record, and the call cache answers a point trained before
(by an earlier scan, or a scan that failed half-way). On a Dask cluster a point is one task
(:func:`tools._cluster_run.run_on_cluster`) whose worker opens the workspace by its path: the workspace must
lie on a filesystem the workers share with this process. Nothing else travels: the task returns the model's id
and its metrics (:class:`PointRun`), or the training's own error as a value (:class:`PointFailure`: retrying a
refused or failed training would fail the same way; a dead worker's point is retried).

Metrics per trainer (:data:`TRAINERS`): a tagger's test-split numbers from its result, and its validation AUC
and loss at the kept epoch (iteration) from the model card's training history; a generator's lowest
validation loss.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physagent.tools._context import ProgressUpdate
from physagent.tools._errors import ToolError, ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolSpec
from physagent.tools._runner import call_tool
from physagent.tools._workspace import Workspace

__all__ = ["LOWER_IS_BETTER", "MAX_POINTS", "TRAINERS", "KeptInWorkspace", "Point", "PointFailure", "PointRun",
           "Trainer", "plan_points", "point_task", "scan_failure", "train_point"]

TOOL = "scan_training"
MAX_POINTS = 64  # trainings per scan: beyond that a grid is better split (or sampled) by a person
LOWER_IS_BETTER = frozenset({"validation_loss"})


@dataclass(frozen=True)
class Trainer:
    """What the scan needs to know of one training tool."""

    data_param: str  # the parameter naming the training data: the scan's ``dataset`` goes there
    metrics: tuple[str, ...]  # what a point reports, the default ranking metric first


TRAINERS = {
    "train_tagger": Trainer("dataset", ("validation_auc", "validation_loss", "test_auc", "test_rejection_at_30",
                                        "test_rejection_at_50", "test_accuracy")),
    "train_generator": Trainer("source", ("validation_loss",)),
}
_NOT_SCANNED = ("seed",)  # the scan's own parameter: every point trains with the same seed


@dataclass(frozen=True)
class Point:
    """One grid point: its index, the scanned values (as the trainer reads them) and the call's arguments."""

    index: int
    parameters: dict[str, Any]
    arguments: dict[str, Any]
    label: str


@dataclass(frozen=True)
class PointRun:
    """What a trained point reports back: its model artifact and metrics, whether the call cache answered, and
    the wall time of the call where it ran."""

    model: str
    metrics: dict[str, float]
    cached: bool
    wall_s: float


# --- the grid: every mistake found before anything trains -----------------------------------------------


def plan_points(spec: ToolSpec, fixed: dict[str, Any], grid: dict[str, list[Any]], data_id: str, seed: int
                ) -> list[Point]:
    """Every combination of ``grid`` (first key slowest) as a checked call of ``spec``'s trainer.

    Raises:
        ToolInputError: an empty grid, too many points, a name the trainer does not have (or that is the data
            or the seed), a parameter both fixed and scanned, a repeated value, or a point the trainer's schema
            refuses; the message names the entry and the fix.
    """
    trainer = TRAINERS[spec.name]
    _check_names(spec, trainer, fixed, grid)
    _check_size(grid)
    points: list[Point] = []
    seen: dict[str, str] = {}  # a point's values (JSON) → its label
    for index, values in enumerate(itertools.product(*grid.values())):
        scanned = dict(zip(grid, values, strict=True))
        arguments = {**fixed, **scanned, trainer.data_param: data_id, "seed": seed}
        validated = _validated(spec, arguments, scanned, set(grid)).model_dump(mode="json")
        parameters = {name: validated[name] for name in grid}
        label = f"point {index + 1} of {_count(grid)} ({_describe(parameters)})"
        key = json.dumps(parameters, sort_keys=True)
        if key in seen:
            raise ToolInputError.for_param(TOOL, "grid", grid, f"gives the same training twice: {seen[key]} and "
                                           f"{label}. List each value once.")
        seen[key] = label
        points.append(Point(index, parameters, arguments, label))
    return points


def _check_names(spec: ToolSpec, trainer: Trainer, fixed: dict[str, Any], grid: dict[str, list[Any]]) -> None:
    if not grid:
        raise ToolInputError.for_param(TOOL, "grid", grid, f"is empty: nothing to scan. Give at least one "
                                       f"{spec.name} parameter with its values, e.g. {{'learning_rate': [0.001, "
                                       f"0.003]}}; for a single training call {spec.name} itself.")
    scannable = [name for name in spec.input_model.model_fields
                 if name != trainer.data_param and name not in _NOT_SCANNED]
    for param, names in (("grid", list(grid)), ("fixed", list(fixed))):
        for name in names:
            if name == trainer.data_param:
                raise ToolInputError.for_param(TOOL, param, {name: (grid if param == "grid" else fixed)[name]},
                                               f"names the training data, which the scan takes as dataset=… (one "
                                               "dataset per scan). Give it there and leave it out of "
                                               f"{param}.")
            if name in _NOT_SCANNED:
                raise ToolInputError.for_param(TOOL, param, {name: (grid if param == "grid" else fixed)[name]},
                                               "sets the seed, which is the scan's own parameter: every point "
                                               "trains with seed=… (to see the spread over seeds, run the scan "
                                               "once per seed).")
            if name not in scannable:
                raise ToolInputError.for_param(TOOL, param, name, f"is not a parameter of {spec.name}. Its "
                                               f"parameters: {', '.join(scannable)}.")
    both = [name for name in grid if name in fixed]
    if both:
        raise ToolInputError.for_param(TOOL, "grid", both[0], "is both in fixed and in grid. Scan it (grid) or "
                                       "fix it (fixed), not both.")


def _check_size(grid: dict[str, list[Any]]) -> None:
    n_points = _count(grid)
    if n_points > MAX_POINTS:
        sizes = " × ".join(f"{len(values)} {name}" for name, values in grid.items())
        raise ToolInputError.for_param(TOOL, "grid", {name: len(v) for name, v in grid.items()},
                                       f"makes {n_points:,} trainings ({sizes}), more than the {MAX_POINTS} a "
                                       "scan runs. Scan fewer values, or one parameter at a time.")


def _count(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in grid.values())


def _validated(spec: ToolSpec, arguments: dict[str, Any], scanned: dict[str, Any], grid_names: set[str]) -> Any:
    try:
        return spec.validate(arguments)
    except ToolInputError as error:
        param = "grid" if error.param and error.param.split(".")[0] in grid_names else "fixed"
        raise ToolInputError(f"{TOOL}: the point {_describe(scanned)} is not a valid {spec.name} call — {error} "
                             f"Fix or drop that value in {param}.", tool=TOOL, param=param, value=error.value
                             ) from None


def _describe(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in parameters.items())


# --- one point ------------------------------------------------------------------------------------------


def train_point(workspace: Workspace, trainer: str, arguments: dict[str, Any], session: str | None,
                report: Callable[[float], None], cancel_event: threading.Event | None = None) -> PointRun:
    """Run one point's training call; ``report`` hears its progress as growth of a fraction of one point.

    Raises:
        ToolError: the training call failed (its own error).
    """
    progress = _PointProgress(report)
    start = time.perf_counter()
    outcome = call_tool(trainer, arguments, workspace=workspace, session=session, progress=progress,
                        cancel_event=cancel_event)
    wall_s = time.perf_counter() - start
    progress.finish()
    result = outcome.result.model_dump(mode="json")
    model = result["model"] if trainer == "train_tagger" else result["generator"]
    return PointRun(model["id"], _metrics(trainer, result), outcome.cached, wall_s)


@dataclass(frozen=True)
class PointFailure:
    """A point whose training call refused or failed (a :class:`ToolError`): returned by its Dask task as a value,
    since running it again would fail the same way; only crashes (a dead worker) are worth a retry."""

    error: ToolError


def point_task(root: str, trainer: str, arguments: dict[str, Any], session: str | None, *,
               report: Callable[[float], None]) -> PointRun | PointFailure:
    """One point as a Dask task: the worker opens the scan's workspace by its path (a shared filesystem)."""
    from distributed import get_worker

    workspace = Workspace(root)
    if not workspace.exists:  # raised, so that the retry may land on a worker that does mount it
        raise ToolRuntimeError(
            f"{TOOL}: the Dask worker {get_worker().address} cannot see the workspace {root}. A scan's points "
            "write their models into the scan's workspace, so it must lie on a filesystem that every worker "
            "mounts at the same path: set PHYSAGENT_HOME (or the workspace) to such a path, or unset "
            "PHYSAGENT_CLUSTER to train the points in this process.")
    try:
        return train_point(workspace, trainer, arguments, session, report)
    except ToolError as error:
        return PointFailure(error)


class _PointProgress:
    """The trainer's progress bars folded into one fraction of a point, reported as it grows."""

    def __init__(self, report: Callable[[float], None]) -> None:
        self.report, self.done = report, 0.0

    def __call__(self, update: ProgressUpdate) -> None:
        if not update.total:
            return
        fraction = min(update.completed / update.total, 1.0)
        if fraction > self.done:
            self.report(fraction - self.done)
            self.done = fraction

    def finish(self) -> None:
        """The point is done (early stopping ends a bar short of its total; a cached call reports nothing)."""
        if self.done < 1.0:
            self.report(1.0 - self.done)
            self.done = 1.0


def _metrics(trainer: str, result: dict[str, Any]) -> dict[str, float]:
    if trainer == "train_generator":
        found = {"validation_loss": result["validation_loss"]}
    else:
        found = {name: result[name] for name in TRAINERS[trainer].metrics if name.startswith("test_")}
        found |= _kept_epoch_validation(result)
    bad = [name for name, value in found.items() if not math.isfinite(value)]
    if bad:
        raise ToolRuntimeError(f"{TOOL}: the training gave no finite {', '.join(bad)} (the validation loss never "
                               "became finite: the training diverged). Lower the learning rate of that point.")
    return {name: float(found[name]) for name in TRAINERS[trainer].metrics}


def _kept_epoch_validation(result: dict[str, Any]) -> dict[str, float]:
    """A tagger's validation AUC and loss at the epoch (BDT: iteration) whose weights it kept."""
    history = result["model"]["metadata"]["training"]["history"]
    kept = next((row for row in history if row["epoch"] == result["best_epoch"]), None)
    if kept is None:
        return {"validation_auc": math.nan, "validation_loss": math.nan}
    return {"validation_auc": kept["val_auc"], "validation_loss": kept["val_loss"]}


# --- a failed scan on Dask: the finished points are already models in the workspace --------------------


class KeptInWorkspace:
    """The :class:`~tools._cluster_run.Keeper` of a scan: a finished point committed its model when it finished,
    so there is nothing to store, and the same scan again finds the point in the call cache."""

    def __init__(self, root: Path) -> None:
        self.where = f"the workspace {root} as model artifacts (the call cache answers them)"

    def load(self, index: int) -> None:
        return None

    def save(self, outcome: Any) -> None:
        return None

    def discard(self) -> None:
        return None


def scan_failure(failures: list[tuple[Point, ToolError]], finished: int, root: Path) -> ToolError:
    """The scan's error once every point ran and some failed: the first failure in full, the others by name, and
    what became of the finished points. An input error when every failure is one (the grid asked for it)."""
    (point, error), others = failures[0], failures[1:]
    more = f" Also failed: {'; '.join(p.label for p, _ in others)}." if others else ""
    kept = (f" The {finished} other point(s) finished: their models are in the workspace {root}, and the same scan "
            "again takes them from the call cache and trains only the rest (fix or drop the failed values first)."
            if finished else " No point finished.")
    kind = ToolInputError if all(isinstance(e, ToolInputError) for _, e in failures) else ToolRuntimeError
    return kind(f"{TOOL}: {point.label} failed — {error}{more}{kept}")
