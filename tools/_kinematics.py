r"""Four-momentum kinematics through ``vector``, in one place for every tool: (px, py, pz, E) ↔ (pT, η, φ, m), ΔR,
and Momentum4D views of stored collections for users' own analysis code.

Conventions: momenta, energies and masses in the input's units (GeV in our artifacts), φ in (−π, π]. Along the beam
(pT = 0) η is ±∞ with the sign of pz (0 when pz = 0 too); callers that need a finite value replace it. A mass from
E² − p² < 0 (float rounding of a massless particle) is 0, not vector's −√|m²|.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cartesian", "delta_r", "four_vectors", "polar"]


def _awkward(value: Any) -> bool:
    import awkward as ak

    return isinstance(value, ak.Array)


def _momentum4d(fields: dict[str, Any]) -> Any:
    """A vector object of ``fields`` (numpy arrays → vector.array, awkward → Momentum4D records)."""
    import vector

    first = next(iter(fields.values()))
    if _awkward(first):
        import awkward as ak

        vector.register_awkward()
        return ak.zip(fields, with_name="Momentum4D")
    return vector.array({name: np.asarray(value) for name, value in fields.items()})


def polar(px: Any, py: Any, pz: Any, e: Any) -> dict[str, Any]:
    """``{"pt", "eta", "phi", "mass"}`` of Cartesian four-momenta (numpy or awkward arrays, jagged or not)."""
    momentum = _momentum4d({"px": px, "py": py, "pz": pz, "E": e})
    with np.errstate(divide="ignore", invalid="ignore"):  # pT = 0: η = ±∞ by design (module docstring)
        mass2 = momentum.M2
        return {"pt": momentum.pt, "eta": momentum.eta, "phi": momentum.phi, "mass": np.sqrt(np.maximum(mass2, 0.0))}


def cartesian(pt: Any, eta: Any, phi: Any, mass: Any) -> tuple[Any, Any, Any, Any]:
    """(px, py, pz, E) in the input's units and float type from (pT, η, φ, m).

    A particle with pT = 0 (η = ±∞ in some files) would give NaN: its η is set to 0 first. A negative mass
    (spacelike rounding in files) is taken as its magnitude.
    """
    import awkward as ak

    eta = ak.where(pt == 0, ak.zeros_like(eta), eta) if _awkward(pt) else np.where(pt == 0, 0.0, eta)
    momentum = _momentum4d({"pt": pt, "eta": eta, "phi": phi, "mass": abs(mass)})
    return momentum.px, momentum.py, momentum.pz, momentum.E


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """ΔR = √(Δη² + Δφ²) with Δφ wrapped into (−π, π], broadcasting like numpy."""
    dphi = (np.asarray(phi1) - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(np.asarray(eta1) - eta2, dphi)


def four_vectors(collection: Any) -> Any:
    """A stored collection (``events.particles``, ``jets.jets`` …) as vector Momentum4D records, so ``.pt``,
    ``.eta``, ``.deltaR(other)``, ``.boostCM_of(…)`` and sums work; other fields ride along.

    Particle records (px, py, pz, e) keep all fields. Jet records carry both ``mass`` and ``e``, which vector
    refuses as two time coordinates: the view keeps ``mass`` and drops ``e`` (``.E`` gives it back).
    """
    import awkward as ak
    import vector

    vector.register_awkward()
    fields = ak.fields(collection)
    polar_record = {"pt", "eta", "phi", "mass"} <= set(fields)
    kept = [f for f in fields if not (polar_record and f == "e")]
    return ak.zip({f: collection[f] for f in kept}, with_name="Momentum4D", depth_limit=collection.ndim)
