r"""Jet constituents as point clouds for the ``pointcloud`` generator, and generated clouds back to jets.

Training (:func:`leading_constituents`): per event the *leading* jet (highest pT) of a ``jets`` artifact
from ``cluster_jets``; its stored constituents (at most ``max_points``, the hardest by pT) become the
points (Δη, Δφ, pT_rel = pT / pT_jet), the jet's pT [GeV] the condition (:data:`~._pointcloud.JET_POINTS`;
EPiC-FM, arXiv:2310.00049; OmniJet-α, arXiv:2403.05618). Events without a jet, or whose leading jet has
no stored constituents, are left out and counted. Only the leading jet is learnt: it is what
``compare_samples`` compares by default, and every event contributes one jet of one population.

Sampling (:func:`assemble_jets`): generated constituents are placed around a jet axis (η_axis, φ_axis):
η = η_axis + Δη, φ = φ_axis + Δφ, pT = pT_rel · pT_jet, massless (E = pT cosh η). The jet's pt, eta,
phi, mass and e are recomputed from the constituents' four-vector sum; Δη, Δφ are recomputed relative to
that jet axis and the constituents sorted by pT, as ``cluster_jets`` does; τ1–τ3, τ21, τ32 and the
soft-drop mass come from FastJet with the functions of :mod:`tools.simulate._jets` and the radius and
soft-drop settings of the training jets. ``pid`` and ``charge`` are 0: the generator does not learn
particle types. Momenta, masses in GeV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolInputError

__all__ = ["ETA_QUANTILES", "JetClouds", "assemble_jets", "draw_axes", "leading_constituents"]

ETA_QUANTILES = 101  # quantiles of the training jets' η kept in the card, to draw jet axes from


@dataclass(frozen=True)
class JetClouds:
    """The leading jets' constituents as points (Δη, Δφ, pT_rel), one (n, 3) array per kept jet."""

    points: list[np.ndarray]
    pt_gev: np.ndarray  # (N,) jet pT, the condition
    eta: np.ndarray  # (N,) jet η, for the axes of generated jets
    n_dropped: int  # events without a jet or without stored constituents
    n_truncated: int  # jets with more stored constituents than max_points (their hardest kept)


def leading_constituents(tool: str, param: str, data: Artifact, max_points: int) -> JetClouds:
    """The leading jet's constituents of every event of a ``jets`` artifact.

    Raises:
        ToolInputError: jets without stored constituents, or NaN / non-positive constituent pT.
    """
    import awkward as ak

    from physagent.tools.generate._generator_io import read_rows

    jets = read_rows(data.path, ["jets.pt[0]"])["jets"]
    fields = set(ak.fields(jets))
    if "constituents" not in fields or not {"pt", "deta", "dphi"} <= set(ak.fields(jets.constituents)):
        raise ToolInputError.for_param(
            tool, param, data.id, "has no jet constituents (jets.constituents with pt, deta, dphi), which "
            "model='pointcloud' learns. Cluster the events with cluster_jets (it stores them), or use "
            "model='flow' with features such as ['jets.mass[0]'].")
    lead = ak.firsts(jets)
    lead = lead[~ak.is_none(lead)]
    constituents = lead.constituents[ak.argsort(lead.constituents.pt, axis=1, ascending=False)]
    n_truncated = int(np.sum(np.asarray(ak.num(constituents)) > max_points))
    constituents = constituents[:, :max_points]
    counts = np.asarray(ak.num(constituents))
    keep = counts > 0
    lead, constituents, counts = lead[keep], constituents[keep], counts[keep]
    pt_jet = np.asarray(lead.pt, dtype=np.float64)
    flat = np.stack([np.asarray(ak.flatten(constituents[name]), dtype=np.float64) for name in ("deta", "dphi", "pt")],
                    axis=1)
    flat[:, 2] /= np.repeat(pt_jet, counts)
    if not (np.all(np.isfinite(flat)) and np.all(np.isfinite(pt_jet))) or np.any(flat[:, 2] <= 0):
        raise ToolInputError.for_param(
            tool, param, data.id, "has leading jets with NaN, infinite or non-positive pT (jet or constituent). "
            "Drop those jets first, or recluster with cluster_jets.")
    points = np.split(flat, np.cumsum(counts)[:-1]) if len(counts) else []
    return JetClouds(points, pt_jet, np.asarray(lead.eta, dtype=np.float64), len(jets) - len(points), n_truncated)


def draw_axes(eta_quantiles: list[float], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) jet axes: η from the training jets' η distribution (inverse CDF of its quantiles), φ uniform."""
    grid = np.linspace(0.0, 1.0, len(eta_quantiles))
    eta = np.interp(rng.uniform(size=n), grid, np.asarray(eta_quantiles))
    return np.stack([eta, rng.uniform(-np.pi, np.pi, n)], axis=1)


def assemble_jets(points: list[np.ndarray], pt_gev: np.ndarray, axes: np.ndarray, radius: float,
                  softdrop: tuple[float, float]) -> Any:
    """Events (one jet each) in the ``cluster_jets`` layout from generated (Δη, Δφ, pT_rel) points.

    Args:
        points: per jet an (n, 3) array Δη, Δφ, pT_rel (pT_rel > 0).
        pt_gev: (N,) the jet pT each jet was generated for [GeV].
        axes: (N, 2) η, φ of the axis the constituents are placed around.
        radius: jet radius R0 of the N-subjettiness and soft-drop measures.
        softdrop: (β, z_cut).

    Returns:
        ``N * {event, weight, jets: 1 * {pt, eta, phi, mass, e, tau1 … tau32, msd, n_constituents,
        constituents: var * {pt, eta, phi, e, deta, dphi, pid, charge}}}``.
    """
    import awkward as ak

    from physagent.tools.simulate import _jets

    counts = np.array([len(p) for p in points], dtype=np.int64)
    flat = np.concatenate(points) if len(points) else np.zeros((0, 3))
    pt = flat[:, 2] * np.repeat(pt_gev, counts)
    eta = flat[:, 0] + np.repeat(axes[:, 0], counts)
    phi = flat[:, 1] + np.repeat(axes[:, 1], counts)
    vectors = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "e": pt * np.cosh(eta)}
    sums = {name: np.add.reduceat(values, np.cumsum(counts) - counts) for name, values in vectors.items()}
    kin = _jets._kinematics(sums["px"], sums["py"], sums["pz"], sums["e"])
    unknown = {"pid": np.zeros(len(flat), dtype=np.int32), "charge": np.zeros(len(flat), dtype=np.int8)}
    per_jet = ak.unflatten(ak.zip(vectors | unknown), counts)
    relative = _jets._relative_constituents(per_jet, kin["eta"], kin["phi"], 0)
    fields = {name: _jets._float32(values) for name, values in (kin | _jets._substructure(per_jet, radius,
                                                                                          softdrop)).items()}
    fields["n_constituents"] = counts.astype(np.int32)
    jets = ak.zip(fields | {"constituents": relative}, depth_limit=1)
    return ak.zip({"event": np.arange(len(counts)), "weight": np.ones(len(counts)),
                   "jets": ak.unflatten(jets, np.ones(len(counts), dtype=np.int64))}, depth_limit=1)
