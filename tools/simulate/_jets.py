r"""Jet clustering with FastJet and jet substructure, the pure core behind ``cluster_jets``.

- Clustering: FastJet's awkward interface (anti-kT, kT or Cambridge/Aachen with radius R).
- N-subjettiness τ_N (Thaler & Van Tilburg, arXiv:1011.2268), normalised measure with β = 1:
  τ_N = Σ_i pT_i min_k ΔR_ik / (Σ_i pT_i R0), axes from one-pass exclusive-kT minimisation;
  τ21 = τ2/τ1 and τ32 = τ3/τ2 (0 when the denominator is 0).
- Soft drop (Larkoski, Marzani, Soyez, Thaler, arXiv:1402.2657): Cambridge/Aachen declustering
  until min(pT1, pT2)/(pT1 + pT2) > z_cut (ΔR12/R0)^β; m_SD is the groomed jet's mass.
- Constituents sorted by pT, relative to the jet axis: Δη = η − η_jet, Δφ wrapped to (−π, π].

Substructure is computed by reclustering every jet's constituents as its own "event" with C/A,
so one FastJet call serves all jets of a chunk. Momenta, masses in GeV.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physagent.tools._kinematics import polar
from physagent.tools._pdg import is_invisible
from physagent.tools._stdio import capture_fd_stdout

__all__ = ["ALGORITHMS", "cluster_events"]

ALGORITHMS = {"antikt": "antikt_algorithm", "kt": "kt_algorithm", "cambridge": "cambridge_algorithm"}
_RECLUSTER_R = 10.0  # large enough that C/A reclustering of one jet's constituents gives one jet


def cluster_events(
    particles: Any,
    algorithm: str,
    radius: float,
    pt_min_gev: float,
    eta_max: float,
    n_constituents: int,
    softdrop: tuple[float, float] | None = (0.0, 0.1),
) -> Any:
    """Cluster each event's particles; returns ``events × jets`` records sorted by pT.

    ``softdrop`` is (β, z_cut) for ``msd``; None skips grooming (no ``msd`` field), which is two
    thirds of the time on large-R jets.
    """
    import awkward as ak

    visible = particles[~is_invisible(particles.pid)]
    index, jets = _inclusive_jets(visible, algorithm, radius, pt_min_gev)
    kin = _kinematics(jets.px, jets.py, jets.pz, jets.E)
    order = ak.argsort(kin["pt"], axis=1, ascending=False)
    keep = np.abs(kin["eta"][order]) < eta_max
    order = order[keep]
    kin = {name: values[order] for name, values in kin.items()}
    constituents = _gather(visible, index[order])
    per_jet = ak.flatten(constituents, axis=1)
    n_jets = ak.num(order, axis=1)
    substructure = _substructure(per_jet, radius, softdrop)
    relative = _relative_constituents(per_jet, ak.flatten(kin["eta"]), ak.flatten(kin["phi"]), n_constituents)
    fields = {name: ak.flatten(values) for name, values in kin.items()} | substructure
    fields = {name: _float32(values) for name, values in fields.items()}
    fields["n_constituents"] = ak.values_astype(ak.num(per_jet, axis=1), np.int32)
    flat = ak.zip(fields | {"constituents": relative}, depth_limit=1)
    return ak.unflatten(flat, n_jets)


def _inclusive_jets(particles: Any, algorithm: str, radius: float, pt_min_gev: float) -> tuple[Any, Any]:
    import awkward as ak
    import fastjet

    vectors = ak.zip({name: ak.values_astype(particles[src], np.float64)
                      for name, src in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "e"))})
    definition = fastjet.JetDefinition(getattr(fastjet, ALGORITHMS[algorithm]), radius)
    with capture_fd_stdout():  # FastJet prints its banner on first use
        sequence = fastjet.ClusterSequence(vectors, definition)
        jets = sequence.inclusive_jets(min_pt=pt_min_gev)
        index = sequence.constituent_index(min_pt=pt_min_gev)
    return index, jets


def _gather(particles: Any, index: Any) -> Any:
    """``particles[index]`` for an ``events × jets × constituents`` index (awkward cannot do it directly)."""
    import awkward as ak

    counts = np.asarray(ak.num(particles, axis=1))
    offsets = np.cumsum(counts) - counts
    flat_index = ak.flatten(index + ak.Array(offsets), axis=None)
    picked = ak.flatten(particles)[np.asarray(flat_index)]
    per_jet = ak.unflatten(picked, ak.flatten(ak.num(index, axis=2)))
    return ak.unflatten(per_jet, ak.num(index, axis=1))


def _kinematics(px: Any, py: Any, pz: Any, e: Any) -> dict[str, Any]:
    return polar(px, py, pz, e) | {"e": e}


def _substructure(per_jet: Any, radius: float, softdrop: tuple[float, float] | None) -> dict[str, Any]:
    import awkward as ak
    import fastjet

    if len(per_jet) == 0:
        empty = np.zeros(0)
        return dict.fromkeys(("tau1", "tau2", "tau3", "tau21", "tau32", *(("msd",) if softdrop else ())), empty)
    vectors = ak.zip({name: ak.values_astype(per_jet[src], np.float64)
                      for name, src in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "e"))})
    definition = fastjet.JetDefinition(fastjet.cambridge_algorithm, _RECLUSTER_R)
    with capture_fd_stdout():
        sequence = fastjet.ClusterSequence(vectors, definition)
        taus = np.asarray(sequence.njettiness(njets=[1, 2, 3], R0=radius))
        groomed = None if softdrop is None else sequence.exclusive_jets_softdrop_grooming(
            njets=1, beta=softdrop[0], symmetry_cut=softdrop[1], R0=radius
        )
    tau1, tau2, tau3 = taus[:, 0], taus[:, 1], taus[:, 2]
    fields = {"tau1": tau1, "tau2": tau2, "tau3": tau3, "tau21": _ratio(tau2, tau1), "tau32": _ratio(tau3, tau2)}
    return fields if groomed is None else fields | {"msd": np.asarray(groomed.msoftdrop)}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _relative_constituents(per_jet: Any, jet_eta: Any, jet_phi: Any, n_keep: int) -> Any:
    import awkward as ak

    kin = _kinematics(per_jet.px, per_jet.py, per_jet.pz, per_jet.e)
    order = ak.argsort(kin["pt"], axis=1, ascending=False)
    if n_keep > 0:
        order = order[:, :n_keep]
    fields = {name: kin[name][order] for name in ("pt", "eta", "phi", "e")}
    fields["deta"] = fields["eta"] - jet_eta
    fields["dphi"] = (fields["phi"] - jet_phi + np.pi) % (2 * np.pi) - np.pi
    out = {name: _float32(values) for name, values in fields.items()}
    return ak.zip(out | {"pid": per_jet.pid[order], "charge": per_jet.charge[order]})


def _float32(values: Any) -> Any:
    import awkward as ak

    if isinstance(values, ak.Array):
        return ak.values_astype(values, np.float32)
    return np.asarray(values, dtype=np.float32)
