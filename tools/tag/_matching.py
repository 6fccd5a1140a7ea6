r"""Truth matching of jets to the hard process, the way the public tagging benchmarks do it.

- **top**: a jet is matched when the top quark *and* its three decay quarks (b, q, q̄′) all lie within
  ΔR < R of the jet axis (Kasieczka et al., "The Machine Learning Landscape of Top Taggers",
  arXiv:1902.09914).
- **W**: the W boson and both decay quarks within ΔR < R.
- **quark/gluon**: the jet is labelled by the flavour of the hard outgoing parton within ΔR < R
  (quark: |pid| 1–5, gluon: 21), as in the Z(→νν)+jet samples of Komiske, Metodiev, Thaler,
  arXiv:1810.05165. Unmatched jets get no label.

Decay products come from the mother links of the hard-process records (``partons.mother1`` of an
``events`` artifact, statuses 21–29): a W/Z/H's quarks are the outgoing quarks whose mother is the boson,
a top's products the b whose mother is the top and the quarks of the W whose mother is the top. Samples
without mother links (made before they were stored, or pruned files) fall back to four-momentum
conservation: the daughters of a resonance sum to its four-momentum (to
0.3–3%, after shower recoils), so a W's quarks are the charge-conserving pair of outgoing quarks whose
sum matches the W best, and a top's b is the b quark that completes a W of the same charge sign to the
top best. A top whose W decayed to leptons has
no quark pair and is never matched. ΔR uses pseudorapidity η and azimuth φ.

For ``make_jet_dataset`` (:mod:`tools.tag.dataset`): :func:`select_jets` clusters events and keeps the
candidate jets inside the cuts (:class:`Cuts`), :func:`select_clustered` does it for already clustered
jets; both label them by the matching mode of their :class:`Source`, and a :class:`Pool` collects them.
:func:`partons_for` finds the hard-process partons of a given sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._kinematics import delta_r, polar

__all__ = [
    "MATCH_MODES", "Cuts", "MatchStats", "Pool", "Source", "match_event", "partons_for", "select_clustered",
    "select_jets",
]

MATCH_MODES = ("top", "w", "quark_gluon")
_QUARKS = {1, 2, 3, 4, 5}
_RESONANCES = {23, 24, 25}  # Z, W, H: two-body decays found as momentum-matching pairs
_MATCH_TOLERANCE = 0.15  # max |Σ p_daughters − p_mother| / E_mother: 0.3–3% after shower recoils
_BOSON_CHARGE3 = {23: 0, 25: 0, 24: 3, -24: -3}  # three times the electric charge


@dataclass
class MatchStats:
    """Counts over all candidate jets: how many had the resonance near the axis and fully contained it."""

    candidates: int = 0
    axis_matched: int = 0
    contained: int = 0
    labels: dict[str, int] = field(default_factory=dict)

    def add(self, other: MatchStats) -> None:
        self.candidates += other.candidates
        self.axis_matched += other.axis_matched
        self.contained += other.contained
        for key, value in other.labels.items():
            self.labels[key] = self.labels.get(key, 0) + value


@dataclass(frozen=True)
class Source:
    """Where one class (or both, for quark/gluon) comes from and how its jets are labelled."""

    name: str
    process: str | None
    decay: str
    match: str | None  # top, w, quark_gluon or None (every jet gets ``label``)
    label: int


@dataclass(frozen=True)
class Cuts:
    """The jet selection: pT window in GeV, |η| < η_max, radius R, hardest jets per event, constituents kept."""

    pt_min_gev: float
    pt_max_gev: float
    eta_max: float
    radius: float
    jets_per_event: int
    n_constituents: int


@dataclass
class Pool:
    """Jets collected for one source, with their labels (−1: failed truth matching)."""

    chunks: list[Any] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    stats: MatchStats = field(default_factory=MatchStats)
    events: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    artifact: str | None = None  # the sample artifact's id, when the jets came from one
    execution: list[dict[str, Any]] = field(default_factory=list)  # where each generated shard ran (provenance)

    def add(self, jets: Any, labels: np.ndarray, stats: MatchStats, n_events: int) -> None:
        self.chunks.append(jets)
        self.labels.append(labels)
        self.stats.add(stats)
        self.events += n_events

    def count(self, label: int) -> int:
        return int(sum(int((labels == label).sum()) for labels in self.labels))


@dataclass(frozen=True)
class _Target:
    """Something a jet can be matched to: an axis (η, φ), the products that must be contained, a label."""

    eta: float
    phi: float
    products: np.ndarray  # (n, 2) η, φ of the decay quarks; empty for partons
    label: int


def match_event(
    jet_eta: np.ndarray, jet_phi: np.ndarray, p4: np.ndarray, pid: np.ndarray, status: np.ndarray, mode: str,
    radius: float, mother1: np.ndarray | None = None,
) -> tuple[np.ndarray, MatchStats]:
    """Labels for the jets of one event: 1 matched signal (or quark), 0 gluon, −1 unmatched.

    Args:
        jet_eta, jet_phi: axes of the event's candidate jets.
        p4, pid, status: the event's hard-process partons: (n, 4) px, py, pz, e in GeV, PDG ids, statuses.
        mode: ``top``, ``w`` or ``quark_gluon``.
        radius: the jet radius R; every required object must lie within ΔR < R.
        mother1: each parton's mother as an index among the partons (−1 none); None: match by momenta.

    Returns:
        Labels per jet and the counts for the containment fraction.
    """
    targets = _targets(p4, pid, np.abs(status), mode, mother1)
    labels = np.full(len(jet_eta), -1, dtype=np.int8)
    stats = MatchStats(candidates=len(jet_eta))
    for index, (eta, phi) in enumerate(zip(jet_eta, jet_phi, strict=True)):
        near = [t for t in targets if delta_r(eta, phi, t.eta, t.phi) < radius]
        if not near:
            continue
        stats.axis_matched += 1
        best = min(near, key=lambda t: delta_r(eta, phi, t.eta, t.phi))
        contained = best.products.size == 0 or bool(
            np.all(delta_r(eta, phi, best.products[:, 0], best.products[:, 1]) < radius))
        if contained:
            stats.contained += 1
            labels[index] = best.label
    return labels, stats


def _targets(p4: np.ndarray, pid: np.ndarray, status: np.ndarray, mode: str,
             mother1: np.ndarray | None = None) -> list[_Target]:
    outgoing_quarks = [i for i in range(len(pid)) if abs(pid[i]) in _QUARKS and status[i] == 23]
    if mother1 is None:
        pairs = _boson_pairs(p4, pid, outgoing_quarks)
    else:
        pairs = _boson_pairs_by_mother(pid, outgoing_quarks, mother1)
    if mode == "quark_gluon":
        daughters = {d for pair in pairs.values() for d in pair}
        partons = [i for i in range(len(pid)) if status[i] == 23 and i not in daughters
                   and (abs(pid[i]) in _QUARKS or pid[i] == 21)]
        return [_target(p4, i, [], 1 if abs(pid[i]) in _QUARKS else 0) for i in partons]
    if mode == "w":
        return [_target(p4, w, list(pair), 1) for w, pair in pairs.items() if abs(pid[w]) == 24]
    tops = (_top_products(p4, pid, status, pairs) if mother1 is None
            else _top_products_by_mother(pid, status, pairs, mother1))
    return [_target(p4, top, products, 1) for top, products in tops.items()]


def _boson_pairs_by_mother(pid: np.ndarray, quarks: list[int], mother1: np.ndarray) -> dict[int, tuple[int, int]]:
    """W/Z/H index → its two outgoing daughter quarks (hadronic decays only), from the mother links."""
    found: dict[int, tuple[int, int]] = {}
    for boson in (i for i in range(len(pid)) if abs(pid[i]) in _RESONANCES):
        daughters = [q for q in quarks if mother1[q] == boson]
        if len(daughters) == 2:
            found[boson] = (daughters[0], daughters[1])
    return found


def _top_products_by_mother(pid: np.ndarray, status: np.ndarray, pairs: dict[int, tuple[int, int]],
                            mother1: np.ndarray) -> dict[int, list[int]]:
    """Top index → [b, q, q̄′]: the outgoing b and the hadronic W whose mother is the top."""
    products: dict[int, list[int]] = {}
    for top in (i for i in range(len(pid)) if abs(pid[i]) == 6):
        b = [i for i in range(len(pid)) if abs(pid[i]) == 5 and status[i] == 23 and mother1[i] == top]
        w = [i for i in pairs if abs(pid[i]) == 24 and mother1[i] == top]
        if len(b) == 1 and len(w) == 1:
            products[top] = [b[0], *pairs[w[0]]]
    return products


def _boson_pairs(p4: np.ndarray, pid: np.ndarray, quarks: list[int]) -> dict[int, tuple[int, int]]:
    """W/Z/H index → the two outgoing quarks whose four-momenta sum to it (hadronic decays only)."""
    found: dict[int, tuple[int, int]] = {}
    for boson in (i for i in range(len(pid)) if abs(pid[i]) in _RESONANCES):
        pairs = [(a, b) for a, b in combinations(quarks, 2)
                 if _charge3(pid[a]) + _charge3(pid[b]) == _BOSON_CHARGE3.get(int(pid[boson]))]
        best = min(pairs, default=None, key=lambda pair: _mismatch(p4[list(pair)].sum(axis=0), p4[boson]))
        if best is not None and _mismatch(p4[list(best)].sum(axis=0), p4[boson]) < _MATCH_TOLERANCE:
            found[boson] = best
    return found


def _top_products(p4: np.ndarray, pid: np.ndarray, status: np.ndarray,
                  pairs: dict[int, tuple[int, int]]) -> dict[int, list[int]]:
    """Top index → [b, q, q̄′]: a b quark and a hadronic W of the top's charge sign that sum to the top."""
    b_quarks = [i for i in range(len(pid)) if abs(pid[i]) == 5 and status[i] == 23]
    products: dict[int, list[int]] = {}
    for top in (i for i in range(len(pid)) if abs(pid[i]) == 6):
        sign = np.sign(pid[top])
        options = [(b, w) for b in b_quarks for w in pairs
                   if pid[w] == 24 * sign and pid[b] == 5 * sign and b not in pairs[w]]
        best = min(options, default=None, key=lambda bw: _mismatch(p4[bw[0]] + p4[bw[1]], p4[top]))
        if best is not None and _mismatch(p4[best[0]] + p4[best[1]], p4[top]) < _MATCH_TOLERANCE:
            products[top] = [best[0], *pairs[best[1]]]
    return products


def _charge3(pid: int) -> int:
    """Three times a quark's electric charge: +2 for u, c, t; −1 for d, s, b (negated for antiquarks)."""
    return int(np.sign(pid)) * (2 if abs(pid) in (2, 4, 6) else -1)


def _target(p4: np.ndarray, index: int, products: list[int], label: int) -> _Target:
    eta, phi = _eta_phi(p4[index])
    coords = np.array([_eta_phi(p4[i]) for i in products]).reshape(-1, 2)
    return _Target(eta, phi, coords, label)


def _eta_phi(p: np.ndarray) -> tuple[float, float]:
    polar_momentum = polar(p[0:1], p[1:2], p[2:3], p[3:4])
    return float(polar_momentum["eta"][0]), float(polar_momentum["phi"][0])


def _mismatch(total: np.ndarray, mother: np.ndarray) -> float:
    return float(np.abs(total - mother).max() / max(abs(mother[3]), 1e-9))



# --- jets of events: selection and labels for make_jet_dataset ----------------------------------


def select_jets(particles: Any, partons: Any, cuts: Cuts, source: Source) -> tuple[Any, np.ndarray, MatchStats]:
    """Cluster events and return the candidate jets (flat records), their labels and matching counts."""
    from physagent.tools.simulate._jets import cluster_events

    jets = cluster_events(particles, "antikt", cuts.radius, cuts.pt_min_gev, cuts.eta_max, cuts.n_constituents)
    return select_clustered(jets, partons, cuts, source)


def select_clustered(jets: Any, partons: Any, cuts: Cuts, source: Source) -> tuple[Any, np.ndarray, MatchStats]:
    """The window and truth matching on already clustered ``events × jets`` records."""
    import awkward as ak

    jets = jets[(jets.pt > cuts.pt_min_gev) & (abs(jets.eta) < cuts.eta_max)][:, :cuts.jets_per_event]
    jets = jets[jets.pt < cuts.pt_max_gev]
    flat = ak.flatten(jets)
    if source.match is None:
        return flat, np.full(len(flat), source.label, dtype=np.int8), MatchStats()
    labels, stats = _match(np.asarray(ak.num(jets)), np.asarray(flat.eta), np.asarray(flat.phi), partons,
                           source.match, cuts.radius)
    return flat, labels, stats


def _match(jets_per_event: np.ndarray, eta: np.ndarray, phi: np.ndarray, partons: Any, mode: str,
           radius: float) -> tuple[np.ndarray, MatchStats]:
    import awkward as ak

    p4 = np.stack([np.asarray(ak.flatten(partons[name]), dtype=np.float64) for name in ("px", "py", "pz", "e")], 1)
    pid = np.asarray(ak.flatten(partons.pid), dtype=np.int64)
    status = np.asarray(ak.flatten(partons.status), dtype=np.int64)
    # samples made before mother links were stored have none: those match by four-momenta
    mothers = np.asarray(ak.flatten(partons.mother1), dtype=np.int64) if "mother1" in ak.fields(partons) else None
    parton_offsets = np.concatenate([[0], np.cumsum(np.asarray(ak.num(partons)))])
    jet_offsets = np.concatenate([[0], np.cumsum(jets_per_event)])
    labels = np.full(len(eta), -1, dtype=np.int8)
    stats = MatchStats()
    for event in np.flatnonzero(jets_per_event):
        jsl = slice(jet_offsets[event], jet_offsets[event + 1])
        psl = slice(parton_offsets[event], parton_offsets[event + 1])
        labels[jsl], event_stats = match_event(eta[jsl], phi[jsl], p4[psl], pid[psl], status[psl], mode, radius,
                                               None if mothers is None else mothers[psl])
        stats.add(event_stats)
    return labels, stats


def partons_for(ctx: ToolContext, artifact: Artifact, data: Any, source: Source, param: str) -> Any:
    """The hard-process partons per event of the sample (from the jets' source events), if matching needs them."""
    import awkward as ak

    from physagent.tools._io import read_parquet

    if source.match is None:
        return None
    if artifact.kind == "events":
        events = data
    else:
        source_id = artifact.metadata.get("source")
        found = ctx.workspace.get_artifact(source_id) if source_id else None
        events = read_parquet(found.path, columns=["partons"])[np.asarray(data.event)] if found else None
    if events is None or "partons" not in ak.fields(events):
        raise ToolInputError.for_param(
            "make_jet_dataset", param, artifact.id, "has no hard-process partons, which truth matching needs. "
            "Use a sample from generate_events, or set truth_matching=False.")
    return events.partons
