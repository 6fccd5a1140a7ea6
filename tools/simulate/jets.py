r"""``cluster_jets``: FastJet jets with substructure from an ``events`` artifact.

Output: one ``jets`` artifact, ``jets.parquet`` with per event ``event`` (index in the source
sample), ``weight`` and ``jets: var * {pt, eta, phi, mass, e, tau1, tau2, tau3, tau21, tau32, msd,
n_constituents, constituents: var * {pt, eta, phi, e, deta, dphi, pid, charge}}`` — jets sorted by
pT, constituents by pT relative to the jet axis, all momenta and masses in GeV. Invisible particles
(neutrinos, χ̃⁰₁, G̃: :mod:`tools._pdg`) are never clustered; events without a ``weight``
field (made by the user's own code) get weight 1. See :mod:`tools.simulate._jets` for the definitions and
references.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact, EventsRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.simulate import _jets

__all__ = ["JetSample", "cluster_jets"]

_CHUNK_EVENTS = 2_000  # bounds memory and gives the progress bar something to show


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
    radius: Annotated[float, Field(gt=0, le=3.0, description="Jet radius R (0.4 standard, 0.8–1.5 large-R).")] = 0.4,
    pt_min_gev: Annotated[float, Field(ge=0, description="Minimum jet pT in GeV.")] = 20.0,
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
    chunks = list(_cluster_chunks(ctx, source.path, n_events, settings))
    from physagent.tools._io import write_parquet_row_groups

    write_parquet_row_groups(chunks, pending.directory / "jets.parquet")
    jets = ak.concatenate([c.jets for c in chunks])
    return _describe(pending, jets, n_events, settings, source.id)


def _cluster_chunks(ctx: ToolContext, path: Any, n_events: int, settings: tuple) -> Any:
    import awkward as ak
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    weighted = "weight" in parquet.schema_arrow.names  # events a user made (read_root, run_python) may have none
    start = 0
    with ctx.progress("FastJet clustering", total=n_events, unit="events") as bar:
        for batch in parquet.iter_batches(batch_size=_CHUNK_EVENTS,
                                          columns=["particles", "weight"] if weighted else ["particles"]):
            table = ak.from_arrow(batch)
            jets = _jets.cluster_events(table.particles, *settings)
            event = ak.Array(list(range(start, start + len(table))))
            weight = table.weight if weighted else ak.Array(np.ones(len(table), dtype=np.float32))
            yield ak.zip({"event": event, "weight": weight, "jets": jets}, depth_limit=1)
            start += len(table)
            bar.advance(len(table))


def _describe(pending: Any, jets: Any, n_events: int, settings: tuple, source_id: str) -> JetSample:
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
    }
    summary = (f"{n_jets:,} {algorithm} R={radius:g} jets (pT > {pt_min:g} GeV, |eta| < {eta_max:g}) "
               f"in {n_events:,} events of {source_id}")
    artifact = pending.finish("jets.parquet", summary, metadata)
    return JetSample(
        jets=artifact, n_events=n_events, n_jets=n_jets, events_with_jets=int(ak.sum(has_jet)),
        leading_jet_mean_pt_gev=mean(leading.pt), leading_jet_mean_mass_gev=mean(leading.mass),
    )
