r"""``detector_response``: a parametrised fast detector (Delphes-like) on generated events.

Turns the truth final state of an ``events`` artifact into reconstructed objects with the same
schema, so every tool that reads events (jet clustering, taggers, …) runs on it unchanged.
Fully vectorised over all particles of a row group at once; seeded, so the same seed gives a
byte-identical file.

Symbols and units: pT, E, p, m in GeV; η = asinh(pz/pT) (pseudorapidity); φ = atan2(py, px) in rad;
``⊕`` is a sum in quadrature, x ⊕ y = √(x² + y²); z ~ N(0, 1) is a standard normal draw.

Model, in order:

1. **Acceptance.** Neutrinos (|pid| 12, 14, 16) and the lightest neutralino (1000022) are invisible.
   Every particle with |η| ≥ ``calo_eta_max`` (or pT = 0) is lost down the beam pipe.
2. **Tracking.** A charged particle with pT > ``track_pt_min_gev`` and |η| < ``tracker_eta_max`` is
   found with probability ``tracking_efficiency`` (muons: ``muon_efficiency``). Its momentum is
   scaled by 1 + (σ(pT)/pT)·z with

       σ(pT)/pT = a ⊕ b·pT      (a dimensionless, b in 1/GeV; muons use their own a, b)

   the direction is kept and E = √(p² + m²) is recomputed with the true mass m. A scale ≤ 0 loses
   the track. Found tracks keep their pid and charge. Electrons are tracked and then measured by
   the tracker and the ECAL together: their σ is the inverse-variance combination
   1/σ² = 1/σ_track² + 1/σ_ECAL² (σ_ECAL from the formula below at the true E).
   Tracked particles leave no calorimeter deposit: an ideal particle flow, no double counting.
3. **Calorimeters.** Photons, and electrons without a found track, go to the ECAL; neutral hadrons
   and charged hadrons without a found track go to the HCAL. Muons without a found track are lost
   (minimum-ionising; their ~2 GeV deposit is neglected). Deposits are summed into η×φ cells
   (``*_cell_deta`` × 2π/round(2π/``*_cell_dphi``), η cells from −``calo_eta_max``); each cell's
   summed energy is smeared once, as in Delphes' towers:

       σ(E)/E = S/√E ⊕ N/E ⊕ C      (S in √GeV, N in GeV, C dimensionless)

   E' = E + σ(E)·z; cells with E' ≤ 0 are dropped (empty cells get no noise). Each cell becomes a
   massless object at the cell centre: pid 22 (ECAL) or 130 (HCAL), charge 0.

Cards (``card=``; ``overrides={"key": value}`` changes single values, validated):

- ``generic_lhc`` (ATLAS/CMS-like; ATLAS JINST 3 S08003): tracker |η| < 2.5, tracks above 0.5 GeV
  found with 95% efficiency, σ(pT)/pT = 1% ⊕ 5·10⁻⁴/GeV·pT (muons 1% ⊕ 10⁻⁴/GeV·pT, 95%);
  calorimeters |η| < 4.9; ECAL 10%/√E ⊕ 0.25 GeV/E ⊕ 0.7%, cells 0.025 × 0.025;
  HCAL 50%/√E ⊕ 1 GeV/E ⊕ 3%, cells 0.1 × 0.1.
- ``ild_like`` (ILD at a linear collider, arXiv:2003.01116): acceptance |η| < 3, tracks above 0.1 GeV,
  99% efficiency, σ(1/pT) = 2·10⁻⁵/GeV ⊕ 10⁻³/pT i.e. σ(pT)/pT = 0.1% ⊕ 2·10⁻⁵/GeV·pT (muons alike);
  ECAL 17%/√E ⊕ 1% (CALICE SiW, arXiv:0805.4833), cells 0.01 × 0.01; HCAL 50%/√E ⊕ 0.18 GeV/E ⊕ 1.6%
  (CALICE AHCAL, arXiv:1207.4210), cells 0.05 × 0.05 (coarser than ILD's 5 mm / 3 cm cells, which
  resolve single showers; this model has no shower shapes to resolve).

Output: an ``events`` artifact, ``events.parquet`` with ``particles`` replaced by the reconstructed
objects and ``partons``, ``weight``, ``pt_hat_gev``, ``m_hat_gev`` carried over; ``card.json`` is the
input's card (generator settings, cross-section) plus a ``detector`` entry with the card used, the
overrides, the seed and the counts. Reference: Delphes, J. de Favereau et al., arXiv:1307.6346.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, Field

from physagent.tools._artifacts import Artifact, EventsRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.simulate import _detector
from physagent.tools.simulate._detector import CARDS, CardName, Counts, DetectorCard

__all__ = ["CARDS", "DetectorCard", "DetectorSample", "detector_response"]


def _check_overrides(overrides: dict[str, float]) -> dict[str, float]:
    """Schema-time check, so a bad key fails before any artifact is touched."""
    _detector.apply_overrides(CARDS["generic_lhc"], overrides)
    return overrides


class DetectorSample(ToolResult):
    """Reconstructed events and what the detector did to them."""

    events: Artifact = Field(description="Parquet artifact of the reconstructed events (kind 'events').")
    card_name: str = Field(description="The named detector card the values started from.")
    card: DetectorCard = Field(description="Every detector card value used, overrides applied.")
    n_events: int = Field(description="Number of events (same as the input).")
    n_input_particles: int = Field(description="Truth final-state particles read.")
    n_output_objects: int = Field(description="Reconstructed objects written (tracks + cells).")
    n_tracks: int = Field(description="Found tracks (charged hadrons, electrons, muons).")
    n_ecal_cells: int = Field(description="ECAL cells with energy above zero (pid 22 objects).")
    n_hcal_cells: int = Field(description="HCAL cells with energy above zero (pid 130 objects).")


@tool(category="simulate", version="1")
def detector_response(
    events: Annotated[EventsRef, Field(description="Events artifact of truth particles, "
                                                      "e.g. from generate_events.")],
    card: Annotated[CardName, Field(description="Named detector card: 'generic_lhc' (ATLAS/CMS-like) or "
                                    "'ild_like' (linear-collider detector, finer tracking and cells).",
                                    json_schema_extra={"x-phrases": {"ild": "ild_like",
                                                                     "linear collider": "ild_like",
                                                                     "linear-collider": "ild_like"}})]
    = "generic_lhc",
    overrides: Annotated[
        dict[str, float], AfterValidator(_check_overrides),
        Field(description="Card values to change, e.g. {'tracking_efficiency': 0.9}. Keys: "
              + ", ".join(DetectorCard.model_fields) + "."),
    ] = {},  # noqa: B006 — pydantic copies defaults; a dict reads best in the schema
    seed: Annotated[int, Field(ge=0, description="Random seed; same seed, identical output file.")] = 0,
    *,
    ctx: ToolContext,
) -> DetectorSample:
    """Simulate a fast parametrised detector (tracking, ECAL, HCAL) on generated events.

    Returns an events artifact of reconstructed objects (tracks keep their pid; ECAL cells are
    pid 22, HCAL cells pid 130), the card values used, and object counts.
    """
    values = _card_values(card, overrides)
    source = ctx.artifact(events, "events")
    pending = ctx.new_artifact("events")
    counts = _process(source.path, pending.directory / "events.parquet", values, seed, ctx)
    n_events = _count_events(pending.directory / "events.parquet")
    detector = {"card": card, "values": values.model_dump(), "overrides": overrides, "seed": seed,
                "source_events": source.id} | asdict(counts)
    _write_card(source.directory / "card.json", pending.directory / "card.json", detector)
    summary = (
        f"{n_events:,} events through the {card} detector (seed {seed}): "
        f"{counts.n_output_objects / max(n_events, 1):.0f} objects/event "
        f"({counts.n_tracks:,} tracks, {counts.n_ecal_cells:,} ECAL and {counts.n_hcal_cells:,} HCAL cells)"
    )
    artifact = pending.finish("events.parquet", summary, source.metadata | {"detector": detector})
    return DetectorSample(events=artifact, card_name=card, card=values, n_events=n_events, **asdict(counts))


def _card_values(card: str, overrides: dict[str, float]) -> DetectorCard:
    try:
        return _detector.apply_overrides(CARDS[card], overrides)
    except ValueError as exc:
        raise ToolInputError.for_param(
            "detector_response", "overrides", overrides, f"is invalid: {exc}"
        ) from None


def _process(source: Path, target: Path, card: DetectorCard, seed: int, ctx: ToolContext) -> Counts:
    """Row group by row group (bounded memory); group i uses the generator seeded with (seed, i)."""
    import awkward as ak
    import pyarrow.parquet as pq

    from physagent.tools._io import write_parquet_row_groups

    n_groups = pq.ParquetFile(source).metadata.num_row_groups
    totals = [Counts(0, 0, 0, 0, 0)]

    def groups() -> Any:
        with ctx.progress(f"detector {card}", total=n_groups, unit="row groups") as bar:
            for index in range(n_groups):
                chunk = ak.from_parquet(source, row_groups=[index])
                rng = np.random.default_rng([seed, index])
                particles, counts = _detector.respond(chunk.particles, card, rng)
                totals[0] += counts
                bar.advance()
                yield ak.with_field(chunk, particles, "particles")

    write_parquet_row_groups(groups(), target)
    return totals[0]


def _count_events(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _write_card(source_card: Path, target: Path, detector: dict[str, Any]) -> None:
    from physagent.tools._io import write_json

    base = json.loads(source_card.read_text()) if source_card.exists() else {}
    write_json(base | {"detector": detector}, target)
