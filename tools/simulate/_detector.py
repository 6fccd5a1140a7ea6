r"""The fast-detector core: detector cards and a vectorised, Delphes-like response (no agent code).

All particles of all events are processed at once as flat numpy arrays plus an event index; no
per-particle Python loops. See :mod:`tools.simulate.detector` for the physics model, the formulas
and the references; this module implements them.

Symbols: pT, E, p in GeV; η pseudorapidity; φ azimuth in rad (−π, π]; m = √max(E² − p², 0) in GeV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from physagent.tools._kinematics import polar
from physagent.tools._pdg import is_invisible

__all__ = [
    "CARDS",
    "Calorimeter",
    "CardName",
    "Counts",
    "Deposits",
    "DetectorCard",
    "Objects",
    "Particles",
    "apply_overrides",
    "calo_relative_resolution",
    "cell_objects",
    "respond",
    "respond_flat",
    "track_relative_resolution",
]

CardName = Literal["generic_lhc", "ild_like"]
ECAL_PID, HCAL_PID = 22, 130

_RESOLUTION = "dimensionless, ≥ 0"


class DetectorCard(BaseModel):
    """One detector's acceptance, efficiencies, resolutions and calorimeter granularity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker_eta_max: float = Field(gt=0, le=6, description="Tracker acceptance |η| < this.")
    track_pt_min_gev: float = Field(ge=0, description="Tracks are found above this pT, in GeV.")
    tracking_efficiency: float = Field(ge=0, le=1, description="Probability to find a charged track "
                                       "(not a muon) in the acceptance.")
    track_resolution_a: float = Field(ge=0, description=f"a in σ(pT)/pT = a ⊕ b·pT; {_RESOLUTION}.")
    track_resolution_b_per_gev: float = Field(ge=0, description="b in σ(pT)/pT = a ⊕ b·pT, in 1/GeV.")
    muon_efficiency: float = Field(ge=0, le=1, description="Probability to reconstruct a muon in the "
                                   "tracker acceptance above track_pt_min_gev.")
    muon_resolution_a: float = Field(ge=0, description=f"a of the muon σ(pT)/pT; {_RESOLUTION}.")
    muon_resolution_b_per_gev: float = Field(ge=0, description="b of the muon σ(pT)/pT, in 1/GeV.")
    calo_eta_max: float = Field(gt=0, le=6, description="Calorimeter (and detector) acceptance |η| < this.")
    ecal_stochastic: float = Field(ge=0, description="ECAL S in σ(E)/E = S/√E ⊕ N/E ⊕ C, in √GeV.")
    ecal_noise_gev: float = Field(ge=0, description="ECAL N (noise), in GeV.")
    ecal_constant: float = Field(ge=0, description=f"ECAL C (constant term); {_RESOLUTION}.")
    hcal_stochastic: float = Field(ge=0, description="HCAL S in σ(E)/E = S/√E ⊕ N/E ⊕ C, in √GeV.")
    hcal_noise_gev: float = Field(ge=0, description="HCAL N (noise), in GeV.")
    hcal_constant: float = Field(ge=0, description=f"HCAL C (constant term); {_RESOLUTION}.")
    ecal_cell_deta: float = Field(ge=1e-3, le=1, description="ECAL cell size in η.")
    ecal_cell_dphi: float = Field(ge=1e-3, le=1, description="ECAL cell size in φ, rad (rounded to 2π/n).")
    hcal_cell_deta: float = Field(ge=1e-3, le=1, description="HCAL cell size in η.")
    hcal_cell_dphi: float = Field(ge=1e-3, le=1, description="HCAL cell size in φ, rad (rounded to 2π/n).")


CARDS: dict[str, DetectorCard] = {
    # ATLAS/CMS-like: ATLAS ID σ(pT)/pT = 0.05%·pT ⊕ 1%, LAr ECAL 10%/√E ⊕ 0.25 GeV/E ⊕ 0.7%,
    # hadronic ~50%/√E ⊕ 3% (JINST 3 S08003), ECAL middle-layer cells 0.025 × 0.025, HCAL 0.1 × 0.1.
    "generic_lhc": DetectorCard(
        tracker_eta_max=2.5, track_pt_min_gev=0.5, tracking_efficiency=0.95,
        track_resolution_a=0.01, track_resolution_b_per_gev=5e-4,
        muon_efficiency=0.95, muon_resolution_a=0.01, muon_resolution_b_per_gev=1e-4,
        calo_eta_max=4.9,
        ecal_stochastic=0.10, ecal_noise_gev=0.25, ecal_constant=0.007,
        hcal_stochastic=0.50, hcal_noise_gev=1.0, hcal_constant=0.03,
        ecal_cell_deta=0.025, ecal_cell_dphi=0.025, hcal_cell_deta=0.1, hcal_cell_dphi=0.1,
    ),
    # ILD-like (ILD IDR, arXiv:2003.01116): σ(1/pT) = 2e-5/GeV ⊕ 1e-3/pT; CALICE SiW ECAL
    # 16.6%/√E ⊕ 1.1% (arXiv:0805.4833); AHCAL 57.6%/√E ⊕ 1.6% ⊕ 0.18 GeV/E (arXiv:1207.4210),
    # rounded to 50%/√E as quoted for ILD; acceptance |cos θ| < 0.99 → |η| < 3.
    "ild_like": DetectorCard(
        tracker_eta_max=3.0, track_pt_min_gev=0.1, tracking_efficiency=0.99,
        track_resolution_a=1e-3, track_resolution_b_per_gev=2e-5,
        muon_efficiency=0.99, muon_resolution_a=1e-3, muon_resolution_b_per_gev=2e-5,
        calo_eta_max=3.0,
        ecal_stochastic=0.17, ecal_noise_gev=0.0, ecal_constant=0.01,
        hcal_stochastic=0.50, hcal_noise_gev=0.18, hcal_constant=0.016,
        ecal_cell_deta=0.01, ecal_cell_dphi=0.01, hcal_cell_deta=0.05, hcal_cell_dphi=0.05,
    ),
}


def apply_overrides(card: DetectorCard, overrides: dict[str, float]) -> DetectorCard:
    """``card`` with some values replaced, validated.

    Raises:
        ValueError: naming the first unknown key (and listing the valid ones) or the offending key.
    """
    unknown = sorted(set(overrides) - set(DetectorCard.model_fields))
    if unknown:
        valid = ", ".join(DetectorCard.model_fields)
        raise ValueError(f"unknown detector card key {unknown[0]!r}. Valid keys: {valid}.")
    try:
        return DetectorCard.model_validate(card.model_dump() | overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        problem = error["msg"].replace("Input should be", "must be")
        why = DetectorCard.model_fields[key].description
        raise ValueError(f"detector card key {key!r}={error.get('input')!r} {problem} ({why})") from None


@dataclass(frozen=True)
class Particles:
    """Flat truth particles of many events: ``event`` index, momenta [GeV], PDG id, charge [e]."""

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pid: np.ndarray
    charge: np.ndarray

    @classmethod
    def from_awkward(cls, particles: Any) -> Particles:
        """Flatten a ``var * {px, py, pz, e, pid, charge}`` awkward array (float64 for the maths)."""
        import awkward as ak

        event = np.repeat(np.arange(len(particles)), np.asarray(ak.num(particles)))
        def flat(name: str, dtype: Any) -> np.ndarray:
            return np.asarray(ak.flatten(particles[name])).astype(dtype)

        return cls(
            event, flat("px", np.float64), flat("py", np.float64), flat("pz", np.float64),
            flat("e", np.float64), flat("pid", np.int64), flat("charge", np.int8),
        )


@dataclass(frozen=True)
class Objects(Particles):
    """Flat reconstructed objects, ordered by event: tracks, then ECAL cells, then HCAL cells."""

    @classmethod
    def concatenate(cls, parts: list[Objects]) -> Objects:
        """Join object lists and order them by event (stable: the per-event order is kept)."""
        event = np.concatenate([p.event for p in parts])
        order = np.argsort(event, kind="stable")
        columns = ("px", "py", "pz", "e", "pid", "charge")
        return cls(event[order], *(np.concatenate([getattr(p, c) for p in parts])[order] for c in columns))

    def to_awkward(self, n_events: int, pid_dtype: Any = np.int32) -> Any:
        """``n_events * var * {px, py, pz, e: float32, pid, charge: int8}`` (the events schema)."""
        import awkward as ak

        counts = np.bincount(self.event, minlength=n_events)
        fields = {name: getattr(self, name).astype(np.float32) for name in ("px", "py", "pz", "e")}
        fields |= {"pid": self.pid.astype(pid_dtype), "charge": self.charge.astype(np.int8)}
        return ak.unflatten(ak.zip(fields), counts)


@dataclass(frozen=True)
class Counts:
    """What the detector did: particles in, objects out, and how the objects split."""

    n_input_particles: int
    n_output_objects: int
    n_tracks: int
    n_ecal_cells: int
    n_hcal_cells: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple[int, ...]:
        return (self.n_input_particles, self.n_output_objects, self.n_tracks, self.n_ecal_cells,
                self.n_hcal_cells)


def respond(particles: Any, card: DetectorCard, rng: np.random.Generator) -> tuple[Any, Counts]:
    """Awkward in, awkward out: the reconstructed ``particles`` of each event and the counts."""
    import awkward as ak

    flat = Particles.from_awkward(particles)
    objects, counts = respond_flat(flat, len(particles), card, rng)
    pid_dtype = ak.flatten(particles.pid).layout.dtype if len(flat.pid) else np.int32
    return objects.to_awkward(len(particles), pid_dtype), counts


def respond_flat(
    p: Particles, n_events: int, card: DetectorCard, rng: np.random.Generator
) -> tuple[Objects, Counts]:
    """The detector on flat particles: tracks, then ECAL and HCAL cells (see the module docstring).

    Random numbers are drawn in a fixed order (efficiency, track smearing, ECAL, HCAL cells), so a
    seeded generator gives identical output.
    """
    kin = _Kinematics.of(p)
    absid = np.abs(p.pid)
    visible = ~is_invisible(absid) & (kin.pt > 0) & (np.abs(kin.eta) < card.calo_eta_max)
    found = _found_tracks(p, kin, visible, card, rng)
    tracks = _smeared_tracks(p, kin.pt, found, card, rng)
    electromagnetic = (p.pid == 22) | (absid == 11)
    to_ecal = visible & ~found & electromagnetic
    to_hcal = visible & ~found & ~electromagnetic & (absid != 13)  # muons are minimum-ionising
    ecal = cell_objects(Deposits.select(p, kin, to_ecal), Calorimeter.of(card, "ecal"), rng)
    hcal = cell_objects(Deposits.select(p, kin, to_hcal), Calorimeter.of(card, "hcal"), rng)
    objects = Objects.concatenate([tracks, ecal, hcal])
    counts = Counts(len(p.pid), len(objects.e), len(tracks.e), len(ecal.e), len(hcal.e))
    return objects, counts


@dataclass(frozen=True)
class _Kinematics:
    """pT [GeV], η (±inf along the beam) and φ [rad] of flat particles."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray

    @classmethod
    def of(cls, p: Particles) -> _Kinematics:
        polar_momenta = polar(p.px, p.py, p.pz, p.e)
        return cls(polar_momenta["pt"], polar_momenta["eta"], polar_momenta["phi"])


def _found_tracks(
    p: Particles, kin: _Kinematics, visible: np.ndarray, card: DetectorCard, rng: np.random.Generator
) -> np.ndarray:
    """Charged particles in the tracker acceptance, found with the (muon) tracking efficiency."""
    in_tracker = visible & (p.charge != 0) & (kin.pt > card.track_pt_min_gev)
    in_tracker &= np.abs(kin.eta) < card.tracker_eta_max
    efficiency = np.where(np.abs(p.pid) == 13, card.muon_efficiency, card.tracking_efficiency)
    return in_tracker & (rng.random(len(kin.pt)) < efficiency)


def track_relative_resolution(pt: np.ndarray, a: float, b_per_gev: float) -> np.ndarray:
    """σ(pT)/pT = a ⊕ b·pT."""
    return np.hypot(a, b_per_gev * pt)


def calo_relative_resolution(
    e: np.ndarray, stochastic: float, noise_gev: float, constant: float
) -> np.ndarray:
    """σ(E)/E = S/√E ⊕ N/E ⊕ C (E > 0)."""
    return np.sqrt(stochastic**2 / e + (noise_gev / e) ** 2 + constant**2)


def _track_resolution(p: Particles, pt: np.ndarray, card: DetectorCard) -> np.ndarray:
    """Relative momentum resolution per particle: muon terms for muons; electrons combine the
    track and ECAL measurements by inverse-variance weighting, 1/σ² = 1/σ_track² + 1/σ_ECAL²."""
    absid = np.abs(p.pid)
    sigma = np.where(
        absid == 13,
        track_relative_resolution(pt, card.muon_resolution_a, card.muon_resolution_b_per_gev),
        track_relative_resolution(pt, card.track_resolution_a, card.track_resolution_b_per_gev),
    )
    electron = absid == 11
    ecal = calo_relative_resolution(
        np.maximum(p.e[electron], 1e-9), card.ecal_stochastic, card.ecal_noise_gev, card.ecal_constant
    )
    sigma[electron] = 1.0 / np.sqrt(1.0 / sigma[electron] ** 2 + 1.0 / np.maximum(ecal, 1e-12) ** 2)
    return sigma


def _smeared_tracks(
    p: Particles, pt: np.ndarray, found: np.ndarray, card: DetectorCard, rng: np.random.Generator
) -> Objects:
    """Found tracks with pT scaled by 1 + σ(pT)/pT·z, direction kept, E from the particle's mass."""
    scale = 1.0 + _track_resolution(p, pt, card) * rng.standard_normal(len(pt))
    keep = found & (scale > 0)
    s = scale[keep]
    px, py, pz = p.px[keep] * s, p.py[keep] * s, p.pz[keep] * s
    p2_true = p.px[keep] ** 2 + p.py[keep] ** 2 + p.pz[keep] ** 2
    mass2 = np.maximum(p.e[keep] ** 2 - p2_true, 0.0)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass2)
    return Objects(p.event[keep], px, py, pz, e, p.pid[keep], p.charge[keep])


@dataclass(frozen=True)
class _Grid:
    """An η-φ cell grid: ``n_eta`` cells of ``deta`` from −η_max, ``n_phi`` cells of 2π/n_phi from −π."""

    eta_max: float
    deta: float
    n_eta: int
    n_phi: int

    @classmethod
    def make(cls, eta_max: float, deta: float, dphi: float) -> _Grid:
        return cls(eta_max, deta, math.ceil(2 * eta_max / deta), max(1, round(2 * math.pi / dphi)))

    def cell_index(self, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        i_eta = np.clip(np.floor((eta + self.eta_max) / self.deta), 0, self.n_eta - 1).astype(np.int64)
        i_phi = np.floor((phi + math.pi) / (2 * math.pi) * self.n_phi).astype(np.int64) % self.n_phi
        return i_eta * self.n_phi + i_phi

    def centre(self, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i_eta, i_phi = np.divmod(cell, self.n_phi)
        return -self.eta_max + (i_eta + 0.5) * self.deta, -math.pi + (i_phi + 0.5) * 2 * math.pi / self.n_phi


@dataclass(frozen=True)
class Deposits:
    """Energy deposits [GeV] at (η, φ) in one calorimeter, with their event index."""

    event: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    e: np.ndarray

    @classmethod
    def select(cls, p: Particles, kin: _Kinematics, mask: np.ndarray) -> Deposits:
        return cls(p.event[mask], kin.eta[mask], kin.phi[mask], p.e[mask])


@dataclass(frozen=True)
class Calorimeter:
    """One calorimeter of a card: resolution terms, cell grid, and the pid its cells get."""

    stochastic: float
    noise_gev: float
    constant: float
    grid: _Grid
    pid: int

    @classmethod
    def of(cls, card: DetectorCard, name: Literal["ecal", "hcal"]) -> Calorimeter:
        value = card.model_dump()
        grid = _Grid.make(card.calo_eta_max, value[f"{name}_cell_deta"], value[f"{name}_cell_dphi"])
        terms = (value[f"{name}_stochastic"], value[f"{name}_noise_gev"], value[f"{name}_constant"])
        return cls(*terms, grid, ECAL_PID if name == "ecal" else HCAL_PID)


def cell_objects(deposits: Deposits, calo: Calorimeter, rng: np.random.Generator) -> Objects:
    """Sum deposits per (event, cell), smear each cell's energy, keep E > 0 as massless objects.

    The cell key is ``event · n_cells + cell``; ``np.unique`` groups deposits and ``np.bincount``
    sums them, so there is no loop over particles or cells.
    """
    grid = calo.grid
    n_cells = grid.n_eta * grid.n_phi
    key = deposits.event.astype(np.int64) * n_cells + grid.cell_index(deposits.eta, deposits.phi)
    cells, inverse = np.unique(key, return_inverse=True)
    energy = np.bincount(inverse.ravel(), weights=deposits.e, minlength=len(cells))
    terms = (calo.stochastic, calo.noise_gev, calo.constant)
    sigma = energy * calo_relative_resolution(np.maximum(energy, 1e-9), *terms)
    smeared = energy + sigma * rng.standard_normal(len(cells))
    keep = smeared > 0
    cell_event, cell = np.divmod(cells[keep], n_cells)
    return _massless(cell_event, *grid.centre(cell), smeared[keep], calo.pid)


def _massless(event: np.ndarray, eta: np.ndarray, phi: np.ndarray, e: np.ndarray, pid: int) -> Objects:
    pt = e / np.cosh(eta)
    n = len(e)
    return Objects(
        event, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e,
        np.full(n, pid, dtype=np.int64), np.zeros(n, dtype=np.int8),
    )
