r"""``write_hepmc``: an events artifact as a HepMC3 ASCII file, for Rivet, Delphes and other HepMC readers.

Each event becomes one HepMC3 ``GenEvent`` (units GeV and mm) built with ``pyhepmc``'s HEPEVT converter:

- two beam particles (status 4, E = √s/2 along ±z, from the sample's card; Rivet asks for beams),
- the hard-process ``partons`` with status |status| (21 incoming, 22 resonance, 23 outgoing), linked to their
  mothers (``mother1``, and ``mother2`` where it is the next entry: HEPEVT parents are a range); incoming
  partons hang off the beam on their side,
- the final-state ``particles`` (status 1). The stored record keeps no shower history between the hard
  process and the final state, so these hang off the event's root vertex, as HepMC allows,

with the event ``weight`` and a ``GenCrossSection`` (σ and its error in pb, accepted and tried events) from
the card. Events from files without a cross-section or √s get neither (a warning says so). The Parquet file
is read in chunks of events; the output carries no time stamp, so the same sample gives the same bytes.

Reference: A. Buckley et al., "The HepMC3 event record library for Monte Carlo event generators", Comput.
Phys. Commun. 260 (2021) 107310, arXiv:1912.08005.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact, EventsRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool

__all__ = ["HepMCFile", "write_hepmc"]

_CHUNK_EVENTS = 500
_FILE = "events.hepmc3"
_PROTON = 2212


class HepMCFile(ToolResult):
    """The HepMC3 file written and what it holds."""

    hepmc: Artifact = Field(description="HepMC3 ASCII file of the events (kind 'hepmc', events.hepmc3).")
    n_events: int = Field(description="Events written.")
    n_particles: int = Field(description="Particle entries written over all events (beams, partons, final state).")
    format: str = Field(description="File format: 'HepMC3 ascii' (Asciiv3), units GeV and mm.")
    warnings: list[str] = Field(default_factory=list, description="What the file lacks, e.g. no cross-section.")


@tool(category="data", version="1")
def write_hepmc(
    events: Annotated[EventsRef, Field(description="Id of an events artifact (from generate_events, "
                                                   "detector_response, read_root or read_table).")],
    max_events: Annotated[int | None, Field(ge=1, le=10_000_000, description="Write only the first this many "
                                            "events (None: all).", json_schema_extra={"x-names": ["first"]})] = None,
    *,
    ctx: ToolContext,
) -> HepMCFile:
    """Write an events sample as a HepMC3 file for Rivet or Delphes.

    Returns a HepMC3 ASCII artifact (GeV, mm) holding per event the beams, the hard-process partons with
    their mother links, the final-state particles, the event weight and the cross-section in pb.
    """
    import pyarrow.parquet as pq

    source = ctx.artifact(events, "events")
    n_rows = pq.ParquetFile(source.path).metadata.num_rows
    n_events = n_rows if max_events is None else min(max_events, n_rows)
    if n_events == 0:
        raise ToolInputError.for_param("write_hepmc", "events", events, "holds no events; generate some first.")
    card = source.metadata
    warnings = _missing(card)
    pending = ctx.new_artifact("hepmc")
    n_particles = _write(ctx, source.path, pending.directory / _FILE, n_events, card)
    summary = f"HepMC3 file of {n_events:,} events ({n_particles:,} particle entries) from {source.id}"
    metadata = {"source": source.id, "n_events": n_events, "format": "HepMC3 ascii",
                "units": {"momenta": "GeV", "lengths": "mm", "cross_section": "pb"},
                "sigma_pb": card.get("sigma_pb"), "sqrt_s_tev": card.get("sqrt_s_tev")}
    artifact = pending.finish(_FILE, summary, metadata)
    return HepMCFile(hepmc=artifact, n_events=n_events, n_particles=n_particles, format="HepMC3 ascii",
                     warnings=warnings)


def _missing(card: dict[str, Any]) -> list[str]:
    found = []
    if card.get("sigma_pb") is None:
        found.append("the sample has no generator cross-section (sigma_pb): the HepMC3 events carry none.")
    if card.get("sqrt_s_tev") is None:
        found.append("the sample does not state its √s (sqrt_s_tev): the HepMC3 events have no beam particles, "
                     "which Rivet needs.")
    return found


def _write(ctx: ToolContext, parquet: Path, target: Path, n_events: int, card: dict[str, Any]) -> int:
    import pyhepmc

    cross_section = _cross_section(card)
    run_info = pyhepmc.GenRunInfo()
    run_info.weight_names = ["Weight"]
    n_particles = 0
    with ctx.progress("HepMC3", total=n_events, unit="events") as bar, pyhepmc.open(str(target), "w") as out:
        for number, record in enumerate(_records(parquet, n_events)):
            event = to_gen_event(record, number, card)
            event.run_info = run_info
            if cross_section is not None:
                event.cross_section = cross_section
            out.write(event)
            n_particles += len(event.particles)
            bar.advance(1)
    return n_particles


def _cross_section(card: dict[str, Any]) -> Any:
    import pyhepmc

    if card.get("sigma_pb") is None:
        return None
    accepted = int(card.get("n_events", 0))
    cross_section = pyhepmc.GenCrossSection()
    cross_section.set_cross_section(float(card["sigma_pb"]), float(card.get("sigma_err_pb") or 0.0), accepted,
                                    accepted + int(card.get("n_failed", 0)))
    return cross_section


def _records(parquet: Path, n_events: int) -> Iterator[Any]:
    """The first ``n_events`` events, read a chunk at a time."""
    import awkward as ak
    import pyarrow.parquet as pq

    file = pq.ParquetFile(parquet)
    columns = [name for name in ("particles", "partons", "weight") if name in file.schema_arrow.names]
    left = n_events
    for batch in file.iter_batches(batch_size=_CHUNK_EVENTS, columns=columns):
        chunk = ak.from_arrow(batch)[:left]
        yield from chunk
        left -= len(chunk)
        if left <= 0:
            return


def to_gen_event(record: Any, number: int, card: dict[str, Any]) -> Any:
    """One event record (``particles``, optional ``partons`` and ``weight``) as a HepMC3 GenEvent in GeV, mm."""
    import pyhepmc

    beams, partons = _beams(card), _partons(record)
    blocks = [block for block in (beams, partons, _final_state(record)) if block is not None]
    offsets = np.cumsum([0] + [len(block["pid"]) for block in blocks])
    parents = [_parents(block, offset) for block, offset in zip(blocks, offsets, strict=False)]
    if beams is not None and partons is not None:
        _attach_to_beams(partons, parents[1])
    joined = {key: np.concatenate([block[key] for block in blocks]) for key in ("px", "py", "pz", "e", "pid", "status")}
    event = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    mass = np.sqrt(np.maximum(joined["e"] ** 2 - joined["px"] ** 2 - joined["py"] ** 2 - joined["pz"] ** 2, 0.0))
    event.from_hepevt(event_number=number, px=joined["px"], py=joined["py"], pz=joined["pz"], en=joined["e"],
                      m=mass, pid=joined["pid"].astype(np.int32), status=joined["status"].astype(np.int32),
                      parents=np.concatenate(parents).astype(np.int32))
    event.weights = [float(record["weight"]) if "weight" in record.fields else 1.0]
    return event


def _block(objects: Any, status: np.ndarray) -> dict[str, np.ndarray]:
    block = {key: np.asarray(objects[key], dtype=np.float64) for key in ("px", "py", "pz", "e")}
    return block | {"pid": np.asarray(objects.pid, dtype=np.int64), "status": status}


def _beams(card: dict[str, Any]) -> dict[str, np.ndarray] | None:
    if card.get("sqrt_s_tev") is None:
        return None
    energy = 500.0 * float(card["sqrt_s_tev"])  # GeV per beam
    beams = (card.get("lhe") or {}).get("beams") or [_PROTON, _PROTON]
    return {"px": np.zeros(2), "py": np.zeros(2), "pz": np.array([energy, -energy]), "e": np.array([energy, energy]),
            "pid": np.asarray(beams, dtype=np.int64), "status": np.array([4, 4]), "mother1": np.array([-1, -1]),
            "mother2": np.array([-1, -1])}


def _partons(record: Any) -> dict[str, np.ndarray] | None:
    if "partons" not in record.fields or len(record.partons) == 0:
        return None
    partons = record.partons
    block = _block(partons, np.abs(np.asarray(partons.status, dtype=np.int64)))
    for name in ("mother1", "mother2"):
        block[name] = (np.asarray(partons[name], dtype=np.int64) if name in partons.fields
                       else np.full(len(block["pid"]), -1))
    return block


def _final_state(record: Any) -> dict[str, np.ndarray]:
    particles = record.particles
    block = _block(particles, np.ones(len(particles), dtype=np.int64))
    return block | {"mother1": np.full(len(block["pid"]), -1), "mother2": np.full(len(block["pid"]), -1)}


def _parents(block: dict[str, np.ndarray], offset: int) -> np.ndarray:
    """HEPEVT parent ranges (1-based, 0 = none) from mother indices inside the block."""
    first = np.where(block["mother1"] >= 0, block["mother1"] + offset + 1, 0)
    # a range can only say "mother1 and mother2" when they are neighbours
    last = np.where((block["mother1"] >= 0) & (block["mother2"] == block["mother1"] + 1),
                    block["mother2"] + offset + 1, first)
    return np.stack([first, last], axis=1)


def _attach_to_beams(partons: dict[str, np.ndarray], links: np.ndarray) -> None:
    """Incoming partons (status 21) without a mother get the beam on their side (+z: beam 1, −z: beam 2)."""
    incoming = (partons["status"] == 21) & (links[:, 0] == 0)
    beam = np.where(partons["pz"] >= 0, 1, 2)
    links[incoming] = np.stack([beam[incoming], beam[incoming]], axis=1)
