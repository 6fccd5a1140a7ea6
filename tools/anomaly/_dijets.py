r"""Dijet events for the anomaly search: Pythia8 → anti-kT large-R jets → the LHC Olympics R&D features.

Events come from the cores of ``generate_events`` (settings from
:func:`tools.simulate.events.process_settings`, seeded shards run by :func:`tools.simulate._pythia.generate`
over the worker processes) and are clustered, in the same workers, by the core of ``cluster_jets``
(:func:`tools.simulate._jets.cluster_events`: anti-kT with radius R, neutrinos excluded, N-subjettiness
τ_N with β = 1; soft drop is skipped, the features use the plain jet mass). Only the features of the
selected events leave a worker.

Selection (:class:`Selection`), as for the LHC Olympics 2020 R&D dataset (Kasieczka, Nachman, Shih et al.,
arXiv:2101.08320): of the jets with |η| < η_max, the two leading in pT, the leading one with pT > pT_min
(1.2 TeV, the trigger of the R&D sample). Per event, in GeV:

- ``mjj_gev``: invariant mass of the two leading jets;
- jets ordered by mass: ``mj1_gev`` the lighter, ``delta_mj_gev`` = m_j2 − m_j1 ≥ 0, ``tau21_j1`` and
  ``tau21_j2`` (τ21 = τ2/τ1, 0 when τ1 = 0), ``pt_j1_gev``, ``pt_j2_gev``, ``eta_j1``, ``eta_j2``.

:func:`lhco_features` computes the same features from the columns of the public LHCO R&D feature file
(``pxj1 … tau3j2``, jet masses ``mj1``/``mj2`` in GeV), as the CATHODE preprocessing does
(arXiv:2109.00546).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolRuntimeError
from physagent.tools._kinematics import polar
from physagent.tools.anomaly._search_data import COLUMNS, Table

__all__ = ["LHCO_COLUMNS", "DijetSample", "Selection", "generate_dijets", "lhco_features", "pair_features", "passes"]

LHCO_COLUMNS = tuple(f"{name}j{jet}" for jet in (1, 2) for name in ("px", "py", "pz", "m", "tau1", "tau2", "tau3"))
_JET_PT_MIN_GEV = 20.0  # clustering threshold; the selection cuts the leading jet far above it
_MIN_SHARDS = 2  # fixed (not the core count), so the events depend on the seed only


@dataclass(frozen=True)
class Selection:
    """The event selection: anti-kT radius R, leading-jet pT > ``pt_min_gev``, both jets |η| < ``eta_max``."""

    radius: float
    pt_min_gev: float
    eta_max: float

    def as_dict(self) -> dict[str, Any]:
        return {"algorithm": "antikt", "radius": self.radius, "leading_jet_pt_min_gev": self.pt_min_gev,
                "eta_max": self.eta_max, "jets": "two leading in pT among jets with |eta| < eta_max"}


@dataclass
class DijetSample:
    """Selected events of one process and what it took to make them."""

    table: Table
    n_generated: int = 0
    sigma_pb: float = 0.0
    sigma_err_pb: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)
    # where each shard ran (worker, attempts): provenance for the artifact's record, kept out of ``record`` (the
    # card) so the dataset's files are the same on the fork pool and on a Dask cluster
    shards_ran: list[dict[str, Any]] = field(default_factory=list)


def pair_features(p4: np.ndarray, mass: np.ndarray, tau21: np.ndarray) -> Table:
    """The features of jet pairs.

    Args:
        p4: (n, 2, 4) px, py, pz, E of the two leading jets in GeV.
        mass, tau21: (n, 2) their masses in GeV and τ21.

    Returns:
        The :data:`COLUMNS` of the contract, jets ordered by mass.
    """
    total = p4.sum(axis=1)
    mjj = np.sqrt(np.maximum(total[:, 3] ** 2 - (total[:, :3] ** 2).sum(axis=1), 0.0))
    polar_momenta = polar(p4[..., 0], p4[..., 1], p4[..., 2], p4[..., 3])
    pt, eta = polar_momenta["pt"], polar_momenta["eta"]
    by_mass = np.argsort(mass, axis=1, kind="stable")
    mass, tau21, pt, eta = (np.take_along_axis(a, by_mass, axis=1) for a in (mass, tau21, pt, eta))
    values = (mjj, mass[:, 0], mass[:, 1] - mass[:, 0], tau21[:, 0], tau21[:, 1], pt[:, 0], pt[:, 1], eta[:, 0],
              eta[:, 1])
    return {name: np.asarray(v, dtype=np.float64) for name, v in zip(COLUMNS, values, strict=True)}


def passes(table: Table, selection: Selection) -> np.ndarray:
    """Events whose leading jet has pT > pT_min and whose two jets have |η| < η_max."""
    leading = np.maximum(table["pt_j1_gev"], table["pt_j2_gev"])
    return ((leading > selection.pt_min_gev) & (np.abs(table["eta_j1"]) < selection.eta_max)
            & (np.abs(table["eta_j2"]) < selection.eta_max))


def dijet_features(particles: Any, selection: Selection) -> Table:
    """Cluster events and return the features of those passing ``selection``."""
    import awkward as ak

    from physagent.tools.simulate._jets import cluster_events

    jets = cluster_events(particles, "antikt", selection.radius, _JET_PT_MIN_GEV, selection.eta_max, 1, None)
    jets = jets[ak.num(jets) >= 2][:, :2]
    if len(jets) == 0:
        return {name: np.zeros(0) for name in COLUMNS}
    pt, eta, phi, e = (np.asarray(jets[name], dtype=np.float64) for name in ("pt", "eta", "phi", "e"))
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e], axis=-1)
    table = pair_features(p4, np.asarray(jets.mass, dtype=np.float64), np.asarray(jets.tau21, dtype=np.float64))
    keep = passes(table, selection)
    return {name: values[keep] for name, values in table.items()}


def lhco_features(columns: dict[str, np.ndarray]) -> Table:
    """The contract's features from the LHCO R&D columns (:data:`LHCO_COLUMNS`; momenta, masses in GeV)."""
    def jet(index: int) -> tuple[np.ndarray, ...]:
        px, py, pz, m, tau1, tau2 = (np.asarray(columns[f"{name}j{index}"], dtype=np.float64)
                                     for name in ("px", "py", "pz", "m", "tau1", "tau2"))
        e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
        tau21 = np.divide(tau2, tau1, out=np.zeros_like(tau2), where=tau1 > 0)
        return np.stack([px, py, pz, e], axis=-1), m, tau21

    (p4_1, m_1, tau_1), (p4_2, m_2, tau_2) = jet(1), jet(2)
    return pair_features(np.stack([p4_1, p4_2], axis=1), np.stack([m_1, m_2], axis=1),
                         np.stack([tau_1, tau_2], axis=1))


def generate_dijets(
    ctx: ToolContext, process: str, settings: list[str], n_events: int, seed: int, selection: Selection,
) -> DijetSample:
    """Generate ``n_events`` events of ``process`` in seeded shards and keep the selected dijet features."""
    from physagent.tools._workers import worker_count
    from physagent.tools.simulate import _pythia
    from physagent.tools.simulate.events import EVENTS_PER_SHARD

    plan = _pythia.shard_plan(n_events, max(_MIN_SHARDS, math.ceil(n_events / EVENTS_PER_SHARD)), seed)
    reduce = functools.partial(_shard_features, selection=selection)
    with ctx.progress(f"Pythia8 {process} events → dijets", total=n_events, unit="events") as bar:
        shards = list(_run(process, settings, plan, worker_count(), bar.advance, reduce))
    chunks = [shard.events for shard in shards]
    n_generated = sum(s.n_accepted for s in shards)
    record = {"process": process, "n_events": n_generated, "pythia_settings": settings, "seed": seed,
              "shards": [{"n_events": n, "pythia_seed": s} for n, s in plan],
              "n_failed": sum(s.n_failed for s in shards)}
    return DijetSample(
        table={name: np.concatenate([c[name] for c in chunks]) for name in COLUMNS}, n_generated=n_generated,
        sigma_pb=sum(s.sigma_pb * s.n_accepted for s in shards) / n_generated,
        sigma_err_pb=math.sqrt(sum((s.sigma_err_pb * s.n_accepted) ** 2 for s in shards)) / n_generated,
        record=record,
        shards_ran=[{"index": s.index, "pythia_seed": seed, "worker": s.worker, "attempts": s.attempts,
                     "kept": s.kept} for s, (_, seed) in zip(shards, plan, strict=True)],
    )


def _shard_features(events: Any, selection: Selection) -> Table:
    """What a worker returns for a shard: the features of its selected events."""
    return dijet_features(events.particles, selection)


def _run(process: str, settings: list[str], plan: list[tuple[int, int]], workers: int,
         report: Callable[[float], None], reduce: Callable[[Any], Table]) -> Any:
    from physagent.tools.simulate import _pythia

    try:
        yield from _pythia.generate(settings, plan, workers, report, reduce)
    except RuntimeError as exc:
        raise ToolRuntimeError(f"make_anomaly_dataset: Pythia failed for process {process!r}: {exc}") from exc
