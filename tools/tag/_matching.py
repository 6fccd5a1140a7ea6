r"""Truth matching of jets to the hard process, the way the public tagging benchmarks do it.

- **top**: a jet is matched when the top quark *and* its three decay quarks (b, q, q̄′) all lie within
  ΔR < R of the jet axis (Kasieczka et al., "The Machine Learning Landscape of Top Taggers",
  arXiv:1902.09914).
- **W**: the W boson and both decay quarks within ΔR < R.
- **quark/gluon**: the jet is labelled by the flavour of the hard outgoing parton within ΔR < R
  (quark: |pid| 1–5, gluon: 21), as in the Z(→νν)+jet samples of Komiske, Metodiev, Thaler,
  arXiv:1810.05165. Unmatched jets get no label.

Decay products come from four-momentum conservation among the hard-process records (``partons`` of
an ``events`` artifact, statuses 21–29): the daughters of a resonance sum to its four-momentum (to
0.3–3%, after shower recoils), so a W's quarks are the charge-conserving pair of outgoing quarks whose
sum matches the W best, and a top's b is the b quark that completes a W of the same charge sign to the
top best. A top whose W decayed to leptons has
no quark pair and is never matched. ΔR uses pseudorapidity η and azimuth φ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

__all__ = ["MATCH_MODES", "MatchStats", "match_event"]

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
class _Target:
    """Something a jet can be matched to: an axis (η, φ), the products that must be contained, a label."""

    eta: float
    phi: float
    products: np.ndarray  # (n, 2) η, φ of the decay quarks; empty for partons
    label: int


def match_event(
    jet_eta: np.ndarray, jet_phi: np.ndarray, p4: np.ndarray, pid: np.ndarray, status: np.ndarray, mode: str,
    radius: float,
) -> tuple[np.ndarray, MatchStats]:
    """Labels for the jets of one event: 1 matched signal (or quark), 0 gluon, −1 unmatched.

    Args:
        jet_eta, jet_phi: axes of the event's candidate jets.
        p4, pid, status: the event's hard-process partons: (n, 4) px, py, pz, e in GeV, PDG ids, statuses.
        mode: ``top``, ``w`` or ``quark_gluon``.
        radius: the jet radius R; every required object must lie within ΔR < R.

    Returns:
        Labels per jet and the counts for the containment fraction.
    """
    targets = _targets(p4, pid, np.abs(status), mode)
    labels = np.full(len(jet_eta), -1, dtype=np.int8)
    stats = MatchStats(candidates=len(jet_eta))
    for index, (eta, phi) in enumerate(zip(jet_eta, jet_phi, strict=True)):
        near = [t for t in targets if _delta_r(eta, phi, t.eta, t.phi) < radius]
        if not near:
            continue
        stats.axis_matched += 1
        best = min(near, key=lambda t: _delta_r(eta, phi, t.eta, t.phi))
        contained = best.products.size == 0 or bool(
            np.all(_delta_r(eta, phi, best.products[:, 0], best.products[:, 1]) < radius))
        if contained:
            stats.contained += 1
            labels[index] = best.label
    return labels, stats


def _targets(p4: np.ndarray, pid: np.ndarray, status: np.ndarray, mode: str) -> list[_Target]:
    outgoing_quarks = [i for i in range(len(pid)) if abs(pid[i]) in _QUARKS and status[i] == 23]
    if mode == "quark_gluon":
        daughters = {d for pair in _boson_pairs(p4, pid, outgoing_quarks).values() for d in pair}
        partons = [i for i in range(len(pid)) if status[i] == 23 and i not in daughters
                   and (abs(pid[i]) in _QUARKS or pid[i] == 21)]
        return [_target(p4, i, [], 1 if abs(pid[i]) in _QUARKS else 0) for i in partons]
    pairs = _boson_pairs(p4, pid, outgoing_quarks)
    if mode == "w":
        return [_target(p4, w, list(pair), 1) for w, pair in pairs.items() if abs(pid[w]) == 24]
    return [_target(p4, top, products, 1) for top, products in _top_products(p4, pid, status, pairs).items()]


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
    pt = max(float(np.hypot(p[0], p[1])), 1e-9)
    return float(np.arcsinh(p[2] / pt)), float(np.arctan2(p[1], p[0]))


def _mismatch(total: np.ndarray, mother: np.ndarray) -> float:
    return float(np.abs(total - mother).max() / max(abs(mother[3]), 1e-9))


def _delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    dphi = (np.asarray(phi1) - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(np.asarray(eta1) - eta2, dphi)
