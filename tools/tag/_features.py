r"""Tagger inputs from jet records: padded per-particle features, four-vectors, η-φ points, jet features.

A jet record is what ``cluster_jets`` writes per jet and ``make_jet_dataset`` stores per row: ``pt, eta,
phi, e, mass, msd`` [GeV], ``tau1, tau2, tau3, tau21, tau32``, ``n_constituents`` and ``constituents:
var * {pt, eta, phi, e, deta, dphi, pid, charge}`` sorted by pT. The leading ``n`` constituents are kept
and zero-padded, with a mask (1 real, 0 padding).

Particle features (the ParT paper's list, arXiv:2202.03772, Table 1), standardised as (x − centre) ×
scale with the centres and scales of the ParT top-tagging configuration, then clipped to [−5, 5]:

=====================  =========================  ===============
name                   definition                 centre, scale
=====================  =========================  ===============
deta, dphi             Δη, Δφ to the jet axis     raw
log_pt, log_e          ln pT, ln E  (GeV)         1.7, 0.7 / 2.0, 0.7
log_pt_rel, log_e_rel  ln(pT/pT_jet), ln(E/E_jet) −4.7, 0.7
delta_r                ΔR = √(Δη² + Δφ²)          0.2, 4.0
=====================  =========================  ===============

With PID ("kinematic+pid"): ``charge`` and 0/1 flags ``is_charged_hadron, is_neutral_hadron, is_photon,
is_electron, is_muon``. Four-vectors ``v`` = (px, py, pz, E) in GeV feed ParT's pairwise features;
``points`` = (Δη, Δφ) are ParticleNet's coordinates and the EFN's angles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from physagent.tools._pdg import is_invisible

__all__ = [
    "FEATURE_SETS", "JET_FEATURES", "KINEMATIC_FEATURES", "PID_FEATURES", "TaggerInputs", "has_pid",
    "non_finite_fields", "particle_feature_names", "tagger_inputs",
]

KINEMATIC_FEATURES = ("deta", "dphi", "log_pt", "log_e", "log_pt_rel", "log_e_rel", "delta_r")
PID_FEATURES = ("charge", "is_charged_hadron", "is_neutral_hadron", "is_photon", "is_electron", "is_muon")
FEATURE_SETS = ("kinematic", "kinematic+pid")
JET_FEATURES = ("mass", "msd", "tau1", "tau2", "tau3", "tau21", "tau32", "n_constituents")
_STANDARDISE = {"log_pt": (1.7, 0.7), "log_e": (2.0, 0.7), "log_pt_rel": (-4.7, 0.7),
                "log_e_rel": (-4.7, 0.7), "delta_r": (0.2, 4.0)}
_CLIP = 5.0


@dataclass(frozen=True)
class TaggerInputs:
    """Model inputs for ``n`` jets and ``P`` particle slots (channels first, as weaver's models want)."""

    x: np.ndarray  # (n, F, P) standardised particle features
    v: np.ndarray  # (n, 4, P) px, py, pz, E [GeV]
    points: np.ndarray  # (n, 2, P) Δη, Δφ
    mask: np.ndarray  # (n, 1, P) 1 real particle, 0 padding
    jet: np.ndarray  # (n, J) jet-level features, JET_FEATURES order

    def __len__(self) -> int:
        return len(self.mask)

    def take(self, index: np.ndarray) -> TaggerInputs:
        """The inputs of the jets at ``index``."""
        return TaggerInputs(self.x[index], self.v[index], self.points[index], self.mask[index], self.jet[index])


def particle_feature_names(feature_set: str) -> list[str]:
    """Names of the per-particle features of a feature set, in channel order."""
    return list(KINEMATIC_FEATURES) + (list(PID_FEATURES) if feature_set == "kinematic+pid" else [])


def has_pid(jets: Any) -> bool:
    """True when the constituents carry ``pid`` and ``charge``."""
    import awkward as ak

    return {"pid", "charge"} <= set(ak.fields(jets.constituents))


def non_finite_fields(jets: Any) -> list[str]:
    """Names of jet or constituent fields that hold NaN or ±inf anywhere."""
    import awkward as ak

    bad = []
    for name in [f for f in ak.fields(jets) if f != "constituents"]:
        if _has_non_finite(jets[name]):
            bad.append(name)
    if "constituents" in ak.fields(jets):
        bad += [f"constituents.{name}" for name in ak.fields(jets.constituents)
                if _has_non_finite(jets.constituents[name])]
    return bad


def _has_non_finite(values: Any) -> bool:
    import awkward as ak

    flat = np.asarray(ak.flatten(values, axis=None))
    return flat.dtype.kind == "f" and not bool(np.isfinite(flat).all())


def tagger_inputs(jets: Any, n_constituents: int, feature_set: str) -> TaggerInputs:
    """Padded model inputs for flat jet records (see the module docstring)."""
    c = {name: _padded(jets.constituents[name], n_constituents)
         for name in ("pt", "eta", "phi", "e", "deta", "dphi")}
    mask = (c["pt"] > 0).astype(np.float32)
    jet_pt = np.asarray(jets.pt, dtype=np.float64)[:, None]
    jet_e = np.asarray(jets.e, dtype=np.float64)[:, None]
    columns = _kinematic(c, jet_pt, jet_e)
    if feature_set == "kinematic+pid":
        columns |= _pid_flags(_padded(jets.constituents.pid, n_constituents),
                              _padded(jets.constituents.charge, n_constituents))
    names = particle_feature_names(feature_set)
    x = np.stack([columns[name] for name in names], axis=1) * mask[:, None, :]
    v = np.stack([c["pt"] * np.cos(c["phi"]), c["pt"] * np.sin(c["phi"]), c["pt"] * np.sinh(c["eta"]), c["e"]], axis=1)
    points = np.stack([c["deta"], c["dphi"]], axis=1) * mask[:, None, :]
    jet = np.stack([np.asarray(jets[name], dtype=np.float64) for name in JET_FEATURES], axis=1)
    return TaggerInputs(x.astype(np.float32), (v * mask[:, None, :]).astype(np.float32),
                        points.astype(np.float32), mask[:, None, :], jet.astype(np.float32))


def _padded(values: Any, n: int) -> np.ndarray:
    import awkward as ak

    padded = ak.fill_none(ak.pad_none(values[:, :n], n, clip=True), 0)
    return np.asarray(ak.to_numpy(padded), dtype=np.float64).reshape(len(values), n)


def _kinematic(c: dict[str, np.ndarray], jet_pt: np.ndarray, jet_e: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = {
            "log_pt": np.log(c["pt"]), "log_e": np.log(c["e"]),
            "log_pt_rel": np.log(c["pt"] / jet_pt), "log_e_rel": np.log(c["e"] / jet_e),
            "delta_r": np.hypot(c["deta"], c["dphi"]),
        }
    out = {"deta": c["deta"], "dphi": c["dphi"]}
    for name, values in raw.items():
        centre, scale = _STANDARDISE[name]
        real = np.where(c["pt"] > 0, values, centre)  # padding: ln 0 → the centre, then masked to 0
        out[name] = np.clip((real - centre) * scale, -_CLIP, _CLIP)
    return out


def _pid_flags(pid: np.ndarray, charge: np.ndarray) -> dict[str, np.ndarray]:
    apid = np.abs(pid)
    lepton = (apid == 11) | (apid == 13)
    return {
        "charge": charge,
        "is_charged_hadron": ((charge != 0) & ~lepton).astype(np.float64),
        "is_neutral_hadron": ((charge == 0) & (apid != 22) & ~is_invisible(apid) & (apid != 0)).astype(
            np.float64),
        "is_photon": (apid == 22).astype(np.float64),
        "is_electron": (apid == 11).astype(np.float64),
        "is_muon": (apid == 13).astype(np.float64),
    }
