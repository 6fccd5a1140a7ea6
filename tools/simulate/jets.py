r"""``cluster_jets``: FastJet jets with substructure from an ``events`` artifact.

Output: one ``jets`` artifact, ``jets.parquet`` with per event ``event`` (index in the source
sample), ``weight`` and ``jets: var * {pt, eta, phi, mass, e, tau1, tau2, tau3, tau21, tau32, msd,
n_constituents, constituents: var * {pt, eta, phi, e, deta, dphi, pid, charge}}`` — jets sorted by
pT, constituents by pT relative to the jet axis, all momenta and masses in GeV. Invisible particles
(neutrinos, χ̃⁰₁, G̃: :mod:`tools._pdg`) are never clustered; events without a ``weight``
field (made by the user's own code) get weight 1. See :mod:`tools.simulate._jets` for the definitions and
references.

With a Dask cluster configured (:mod:`tools._cluster`) the chunks of events are clustered as Dask tasks: each
worker reads its own events from the events file by path (the workspace lies on a filesystem every worker
mounts at the same path) and sends its jets back; this process writes the artifact, which holds the same bytes
as without a cluster. ``metadata["execution"]`` records the worker and attempts of each task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact, EventsRef
from physagent.tools._cluster import cluster_client, executor_record
from physagent.tools._cluster_run import ClusterTask, ClusterTaskError, run_on_cluster
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools._io import parquet_batches
from physagent.tools._registry import ToolResult, tool
from physagent.tools.simulate import _jets

__all__ = ["JetSample", "cluster_jets"]

_CHUNK_EVENTS = 2_000  # bounds memory and gives the progress bar something to show; one row group each
_TASKS_PER_ROW_GROUP = 10  # at most this many Dask tasks share a row group (each decodes it from its start)


class JetSample(ToolResult):
    """Clustered jets and headline numbers about them."""

    jets: Artifact = Field(description="Parquet artifact of jets per event (kind 'jets').")
    n_events: int = Field(description="Events read from the input sample.")
    n_jets: int = Field(description="Jets passing pt_min_gev and eta_max, over all events.")
    events_with_jets: int = Field(description="Events with at least one jet.")
    leading_jet_mean_pt_gev: float = Field(description="Mean pT of the leading jet, in GeV (0 if none).")
    leading_jet_mean_mass_gev: float = Field(description="Mean mass of the leading jet, in GeV (0 if none).")


@tool(category="simulate", version="1")
def cluster_jets(
    events: Annotated[EventsRef, Field(description="Id of an events artifact (from generate_events, "
                                                   "detector_response, read_root or read_table).")],
    algorithm: Annotated[
        Literal["antikt", "kt", "cambridge"], Field(description="Clustering algorithm (anti-kT, kT, Cambridge/Aachen).")
    ] = "antikt",
    radius: Annotated[float, Field(gt=0, le=3.0, description="Jet radius R (0.4 standard, 0.8–1.5 large-R).",
                                   json_schema_extra={"x-names": ["r"]})] = 0.4,
    pt_min_gev: Annotated[float, Field(ge=0, description="Minimum jet pT in GeV.", json_schema_extra={
        "x-names": ["jets above", "jets over", "jets with pt above", "jets with pt over", "jets with pt >"]})] = 20.0,
    eta_max: Annotated[float, Field(gt=0, le=10, description="Maximum jet |η|.")] = 2.5,
    n_constituents: Annotated[
        int, Field(ge=0, le=1000, description="Leading constituents kept per jet (0: all).")
    ] = 100,
    softdrop_beta: Annotated[float, Field(ge=0, le=5, description="Soft-drop angular exponent β.")] = 0.0,
    softdrop_zcut: Annotated[float, Field(gt=0, lt=0.5, description="Soft-drop momentum-fraction cut z_cut.")] = 0.1,
    *,
    ctx: ToolContext,
) -> JetSample:
    """Cluster jets with FastJet and compute jet substructure.

    Returns per-event jets (pT, η, φ, mass in GeV), N-subjettiness τ1–τ3 with τ21 and τ32, soft-drop
    mass, and the leading constituents relative to the jet axis — the input later taggers need.
    """
    import awkward as ak
    import pyarrow.parquet as pq

    source = ctx.artifact(events, "events")
    n_events = pq.ParquetFile(source.path).metadata.num_rows
    if n_events == 0:
        raise ToolInputError.for_param("cluster_jets", "events", events, "holds no events; generate some first.")
    pending = ctx.new_artifact("jets")
    settings = (algorithm, radius, pt_min_gev, eta_max, n_constituents, (softdrop_beta, softdrop_zcut))
    client = cluster_client()
    with ctx.progress("FastJet clustering", total=n_events, unit="events") as bar:
        if client is None:
            chunks = list(_clustered_chunks(source.path, settings, 0, n_events, _CHUNK_EVENTS, bar.advance))
            execution = None
        else:
            chunks, execution = _cluster_on_dask(client, source, n_events, settings, bar.advance,
                                                 ctx.check_cancelled)
    from physagent.tools._io import write_parquet_row_groups

    write_parquet_row_groups(chunks, pending.directory / "jets.parquet")
    jets = ak.concatenate([c.jets for c in chunks])
    return _describe(pending, jets, n_events, settings, source.id, execution)


def _clustered_chunks(path: Path, settings: tuple, start: int, stop: int, chunk_events: int,
                      report: Callable[[float], None]) -> Iterator[Any]:
    """Events ``start`` to ``stop`` of the file, clustered ``chunk_events`` at a time; ``start`` is a multiple
    of it, so that a Dask task cuts the same chunks (and so row groups) as one pass over the whole file."""
    import awkward as ak
    import pyarrow.parquet as pq

    weighted = "weight" in pq.ParquetFile(path).schema_arrow.names  # events a user made may have none
    columns = ["particles", "weight"] if weighted else ["particles"]
    for batch in parquet_batches(path, chunk_events, columns, start, stop):
        table = ak.from_arrow(batch)
        jets = _jets.cluster_events(table.particles, *settings)
        event = ak.Array(list(range(start, start + len(table))))
        weight = table.weight if weighted else ak.Array(np.ones(len(table), dtype=np.float32))
        yield ak.zip({"event": event, "weight": weight, "jets": jets}, depth_limit=1)
        start += len(table)
        report(len(table))


def _cluster_on_dask(client: Any, source: Artifact, n_events: int, settings: tuple,
                     report: Callable[[float], None], check: Callable[[], None]) -> tuple[list[Any], dict[str, Any]]:
    """The chunks, clustered as Dask tasks; and where each task ran, for the artifact's record."""
    ranges = _task_ranges(source.path, n_events)
    tasks = [ClusterTask(_clustering_task, (str(source.path), settings, start, stop, _CHUNK_EVENTS),
                         f"events {start}-{stop - 1} of {source.id}") for start, stop in ranges]
    chunks: list[Any] = []
    shards = []
    try:
        for outcome in run_on_cluster(client, tasks, report, check=check):
            chunks += outcome.value
            start, stop = ranges[outcome.index]
            shards.append({"index": outcome.index, "events": [start, stop], "worker": outcome.worker,
                           "attempts": outcome.attempts})
    except ClusterTaskError as exc:
        raise ToolRuntimeError(f"cluster_jets: {exc}") from exc
    return chunks, executor_record() | {"shards": shards}


def _task_ranges(path: Path, n_events: int) -> list[tuple[int, int]]:
    """The events of each Dask task: one chunk, or several when the file's row groups are much larger (a task
    decodes its first row group from the start, so at most ``_TASKS_PER_ROW_GROUP`` tasks share one)."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    largest = max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    span = _CHUNK_EVENTS * max(1, math.ceil(largest / (_TASKS_PER_ROW_GROUP * _CHUNK_EVENTS)))
    return [(start, min(start + span, n_events)) for start in range(0, n_events, span)]


def _clustering_task(path: str, settings: tuple, start: int, stop: int, chunk_events: int, *,
                     report: Callable[[float], None]) -> list[Any]:
    """Runs on a Dask worker: cluster events ``start`` to ``stop``, read from the shared workspace by path."""
    if not Path(path).is_file():  # a retry elsewhere may see it; the error names the contract otherwise
        raise FileNotFoundError(f"this Dask worker cannot see {path}: the workspace must lie on a filesystem "
                                "every worker mounts at the same path (see 'Scale-out on Dask' in the README)")
    return list(_clustered_chunks(Path(path), settings, start, stop, chunk_events, report))


def _describe(pending: Any, jets: Any, n_events: int, settings: tuple, source_id: str,
              execution: dict[str, Any] | None) -> JetSample:
    import awkward as ak

    algorithm, radius, pt_min, eta_max, n_const, (beta, z_cut) = settings
    leading = ak.firsts(jets)
    has_jet = ~ak.is_none(leading)
    mean = lambda values: float(ak.mean(values[has_jet])) if ak.any(has_jet) else 0.0  # noqa: E731
    n_jets = int(ak.sum(ak.num(jets)))
    metadata = {
        "source": source_id, "algorithm": algorithm, "radius": radius, "pt_min_gev": pt_min,
        "eta_max": eta_max, "n_constituents": n_const, "softdrop_beta": beta, "softdrop_zcut": z_cut,
        "n_events": n_events, "n_jets": n_jets,
    } | ({"execution": execution} if execution else {})  # provenance, not content: only where a cluster ran
    summary = (f"{n_jets:,} {algorithm} R={radius:g} jets (pT > {pt_min:g} GeV, |eta| < {eta_max:g}) "
               f"in {n_events:,} events of {source_id}")
    artifact = pending.finish("jets.parquet", summary, metadata)
    return JetSample(
        jets=artifact, n_events=n_events, n_jets=n_jets, events_with_jets=int(ak.sum(has_jet)),
        leading_jet_mean_pt_gev=mean(leading.pt), leading_jet_mean_mass_gev=mean(leading.mass),
    )
