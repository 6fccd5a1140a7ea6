r"""The calorimeter-shower core: a Si-W sampling stack and spot-level electromagnetic showers (no agent code).

See :mod:`tools.simulate.showers` for the model, its formulas and references; this module implements
them with numpy, vectorised over all spots of a batch of showers. Depths ``t`` are in radiation
lengths X0 along the shower axis, energies of incident particles in GeV, deposits in MeV, lengths in mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "ES_MEV",
    "SILICON",
    "TUNGSTEN",
    "Batch",
    "EcalStack",
    "Medium",
    "longitudinal_parameters",
    "median_shower_max_x0",
    "radial_parameters",
    "simulate_batch",
    "spot_variance",
]

ES_MEV = 21.2052  # scale energy E_s = m_e c² √(4π/α) of the Molière radius
CONVERSION_X0 = 9.0 / 7.0  # mean free path of a high-energy photon before it converts, in X0


@dataclass(frozen=True)
class Material:
    """PDG properties: Z, A [g/mol], density [g/cm³], X0 [mm], E_c [MeV], minimum-ionising dE/dx [MeV/mm]."""

    name: str
    z: float
    a: float
    density: float
    x0_mm: float
    ec_mev: float
    dedx_mev_per_mm: float

    @property
    def x0_g_cm2(self) -> float:
        return self.x0_mm / 10.0 * self.density


TUNGSTEN = Material("W", 74.0, 183.84, 19.30, 3.504, 7.97, 1.145 * 19.30 / 10.0)
SILICON = Material("Si", 14.0, 28.0855, 2.329, 93.70, 40.19, 1.664 * 2.329 / 10.0)


@dataclass(frozen=True)
class Medium:
    """The effective homogeneous medium of one sampling structure (absorber + sensor + gap).

    ``fs`` is the sampling frequency F_S = X0,eff / pitch; ``e_hat`` = ê = e/mip, the electron-to-MIP
    response ratio; ``f_mip`` the MIP sampling fraction; ``de_cell_mev`` the energy a MIP loses in one layer.
    """

    z_eff: float
    x0_mm: float
    rm_mm: float
    ec_mev: float
    fs: float
    e_hat: float
    f_mip: float
    de_cell_mev: float

    @classmethod
    def of_layer(cls, absorber_mm: float, sensor_mm: float, gap_mm: float) -> Medium:
        """Grindhammer–Peters effective quantities (mass-weighted; the readout gap counts as length only)."""
        w_mass = absorber_mm * TUNGSTEN.density
        s_mass = sensor_mm * SILICON.density
        w_w, w_s = w_mass / (w_mass + s_mass), s_mass / (w_mass + s_mass)
        pitch = absorber_mm + sensor_mm + gap_mm
        density = (w_mass + s_mass) / pitch  # g/cm³, gap massless
        inv_x0 = w_w / TUNGSTEN.x0_g_cm2 + w_s / SILICON.x0_g_cm2
        ec_over_x0 = w_w * TUNGSTEN.ec_mev / TUNGSTEN.x0_g_cm2 + w_s * SILICON.ec_mev / SILICON.x0_g_cm2
        x0_mm = 10.0 / inv_x0 / density
        de_w, de_s = absorber_mm * TUNGSTEN.dedx_mev_per_mm, sensor_mm * SILICON.dedx_mev_per_mm
        return cls(
            z_eff=w_w * TUNGSTEN.z + w_s * SILICON.z, x0_mm=x0_mm, rm_mm=10.0 * ES_MEV / ec_over_x0 / density,
            ec_mev=ec_over_x0 / inv_x0, fs=x0_mm / pitch, e_hat=1.0 / (1.0 + 0.007 * (TUNGSTEN.z - SILICON.z)),
            f_mip=de_s / (de_w + de_s), de_cell_mev=de_w + de_s,
        )

    @property
    def sampling_fraction(self) -> float:
        """Visible (Si) over deposited energy for electromagnetic showers: ê · f_mip."""
        return self.e_hat * self.f_mip

    @property
    def cos_theta_eff(self) -> float:
        """Amaldi's mean cosine of shower tracks to the layer normal, cos(E_s / (π E_c))."""
        return math.cos(ES_MEV / (math.pi * self.ec_mev))


@dataclass(frozen=True)
class EcalStack:
    """``n_layers`` layers of [W absorber | Si sensor | readout gap]; the last ``n_thick_layers`` have thicker W.

    The lateral readout is a window of ``n_cells`` × ``n_cells`` square cells of ``cell_size_mm``.
    """

    n_layers: int = 30
    n_thick_layers: int = 10
    absorber_mm: float = 2.1
    thick_absorber_mm: float = 4.2
    sensor_mm: float = 0.5
    gap_mm: float = 0.8
    cell_size_mm: float = 5.0
    n_cells: int = 24

    @cached_property
    def absorbers_mm(self) -> np.ndarray:
        thick = np.arange(self.n_layers) >= self.n_layers - self.n_thick_layers
        return np.where(thick, self.thick_absorber_mm, self.absorber_mm)

    @cached_property
    def media(self) -> list[Medium]:
        """The effective medium of each layer."""
        cache = {d: Medium.of_layer(d, self.sensor_mm, self.gap_mm) for d in set(self.absorbers_mm.tolist())}
        return [cache[d] for d in self.absorbers_mm.tolist()]

    @property
    def front(self) -> Medium:
        """The first layer's medium: the shower starts and peaks there, so it sets y, Z_eff, F_S."""
        return self.media[0]

    @cached_property
    def pitch_mm(self) -> np.ndarray:
        return self.absorbers_mm + self.sensor_mm + self.gap_mm

    @cached_property
    def front_z_mm(self) -> np.ndarray:
        """z of each layer's front face (the calorimeter starts at z = 0)."""
        return np.concatenate([[0.0], np.cumsum(self.pitch_mm)[:-1]])

    @cached_property
    def sensor_z_mm(self) -> np.ndarray:
        """z of the front face of each layer's sensor."""
        return self.front_z_mm + self.absorbers_mm

    @cached_property
    def x0_per_layer(self) -> np.ndarray:
        """Radiation lengths of each layer at normal incidence."""
        return self.absorbers_mm / TUNGSTEN.x0_mm + self.sensor_mm / SILICON.x0_mm

    @cached_property
    def x0_edges(self) -> np.ndarray:
        """Cumulative depth in X0 at the layer boundaries (n_layers + 1 values)."""
        return np.concatenate([[0.0], np.cumsum(self.x0_per_layer)])

    @cached_property
    def sampling_fractions(self) -> np.ndarray:
        return np.array([m.sampling_fraction for m in self.media])

    @property
    def depth_mm(self) -> float:
        return float(self.pitch_mm.sum())

    @property
    def axis_centre_z_mm(self) -> float:
        """Depth where a tilted axis crosses the window centre: layer n_layers // 3's sensor (near the maximum)."""
        return float(self.sensor_z_mm[self.n_layers // 3] + self.sensor_mm / 2)


def longitudinal_parameters(energy_gev: np.ndarray, medium: Medium) -> tuple[np.ndarray, ...]:
    """⟨ln T⟩, ⟨ln α⟩, σ(ln T), σ(ln α), ρ of a sampling calorimeter at incident ``energy_gev``.

    Grindhammer–Peters (hep-ex/0001020, eqs. for sampling media, as in Geant4's GFlash):
    ⟨ln T⟩ = ln(ln y − 0.812 − 0.55/F_S − 0.69 (1 − ê)), ⟨ln α⟩ = ln(0.81 + (0.458 + 2.26/Z) ln y − 0.476/F_S),
    σ(ln T) = (−2.5 + 1.25 ln y)⁻¹, σ(ln α) = (−0.82 + 0.79 ln y)⁻¹, ρ = 0.784 − 0.023 ln y; y = E/E_c.
    """
    ln_y = np.log(np.asarray(energy_gev, dtype=np.float64) * 1000.0 / medium.ec_mev)
    t_hom = np.maximum(ln_y - 0.812, 0.1)
    a_hom = np.maximum(0.81 + (0.458 + 2.26 / medium.z_eff) * ln_y, 0.1)
    mean_ln_t = np.log(np.maximum(t_hom - 0.55 / medium.fs - 0.69 * (1.0 - medium.e_hat), 0.1))
    mean_ln_a = np.log(np.maximum(a_hom - 0.476 / medium.fs, 1.1))
    sigma_ln_t = np.minimum(0.5, 1.0 / np.maximum(-2.5 + 1.25 * ln_y, 1e-3))
    sigma_ln_a = np.minimum(0.5, 1.0 / np.maximum(-0.82 + 0.79 * ln_y, 1e-3))
    rho = np.clip(0.784 - 0.023 * ln_y, -1.0, 1.0)
    return mean_ln_t, mean_ln_a, sigma_ln_t, sigma_ln_a, rho


def median_shower_max_x0(energy_gev: np.ndarray, medium: Medium, particle: str = "electron") -> np.ndarray:
    """The documented depth of the shower maximum, exp⟨ln T⟩ (+ 9/7 X0 conversion depth for photons), in X0."""
    depth = np.exp(longitudinal_parameters(energy_gev, medium)[0])
    return depth + (CONVERSION_X0 if particle == "photon" else 0.0)


def radial_parameters(energy_gev: np.ndarray, tau: np.ndarray, z_eff: np.ndarray, fs: np.ndarray,
                      e_hat: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Core radius R_C, tail radius R_T (in Molière radii) and core weight p at τ = t/T (GP, sampling media).

    R_C = z₁ + z₂τ with z₁ = 0.0251 + 0.00319 ln E, z₂ = 0.1162 − 0.000381 Z;
    R_T = k₁(e^{k₃(τ−k₂)} + e^{k₄(τ−k₂)}) with k₁ = 0.659 − 0.00309 Z, k₂ = 0.645, k₃ = −2.59,
    k₄ = 0.3585 + 0.0412 ln E; p = p₁ exp((p₂−τ)/p₃ − e^{(p₂−τ)/p₃}) with p₁ = 2.632 − 0.00094 Z,
    p₂ = 0.401 + 0.00187 Z, p₃ = 1.313 − 0.0686 ln E. Sampling terms: R_C += −0.0203(1−ê) + 0.0397 e^{−τ}/F_S,
    R_T += −0.14(1−ê) − 0.495 e^{−τ}/F_S, p += (1−ê)(0.348 − 0.642 e^{−(τ−1)²}/F_S). E in GeV.
    """
    ln_e = np.log(energy_gev)
    r_core = 0.0251 + 0.00319 * ln_e + (0.1162 - 0.000381 * z_eff) * tau
    r_core += -0.0203 * (1.0 - e_hat) + 0.0397 / fs * np.exp(-tau)
    k1, k4 = 0.659 - 0.00309 * z_eff, 0.3585 + 0.0412 * ln_e
    r_tail = k1 * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
    r_tail += -0.14 * (1.0 - e_hat) - 0.495 / fs * np.exp(-tau)
    p1, p2, p3 = 2.632 - 0.00094 * z_eff, 0.401 + 0.00187 * z_eff, 1.313 - 0.0686 * ln_e
    x = (p2 - tau) / p3
    p = p1 * np.exp(x - np.exp(x)) + (1.0 - e_hat) * (0.348 - 0.642 / fs * np.exp(-((tau - 1.0) ** 2)))
    return np.maximum(r_core, 0.01), np.maximum(r_tail, 0.05), np.clip(p, 0.0, 1.0)


def spot_variance(stack: EcalStack, sampling_term: float) -> float:
    """Relative variance v of one sensor hit such that the front section has σ/E = sampling_term/√E.

    With N = E·ê·⟨cos⟩/ΔE_cell Poisson hits of relative variance v, (σ/E)² = (1 + v)·ΔE_cell/(ê⟨cos⟩ E);
    v = 0 when the structure alone already fluctuates more than asked.
    """
    front = stack.front
    per_gev = front.e_hat * front.cos_theta_eff / (front.de_cell_mev / 1000.0)
    return max(sampling_term**2 * per_gev - 1.0, 0.0)


@dataclass
class Batch:
    """Simulated showers: cells (n, layers, cells, cells) in MeV; flat points with per-shower ``counts``."""

    cells_mev: np.ndarray
    counts: np.ndarray
    x_mm: np.ndarray
    y_mm: np.ndarray
    z_mm: np.ndarray
    layer: np.ndarray
    e_mev: np.ndarray


def simulate_batch(energy_gev: np.ndarray, theta_deg: float, particle: str, stack: EcalStack,
                   sampling_term: float, rng: np.random.Generator) -> Batch:
    """Showers of ``energy_gev`` (one per value): per-shower profile, spots in depth and radius, sensor hits."""
    n = len(energy_gev)
    cos_inc = math.cos(math.radians(theta_deg))
    shower, tau, t_abs = _spot_depths(energy_gev, particle, stack, cos_inc, rng)
    layer = np.searchsorted(stack.x0_edges / cos_inc, t_abs, side="right") - 1
    keep = layer < stack.n_layers  # deeper spots leak out of the back
    de_cell = np.array([m.de_cell_mev for m in stack.media])
    keep[keep] &= rng.random(int(keep.sum())) < stack.front.de_cell_mev / de_cell[layer[keep]]  # coarser sampling
    shower, tau, layer = shower[keep], tau[keep], layer[keep]
    x, y, z = _spot_positions(energy_gev[shower], tau, layer, stack, cos_inc, rng)
    v = spot_variance(stack, sampling_term)
    sigma = math.sqrt(math.log1p(v))
    mean_hit = SILICON.dedx_mev_per_mm * stack.sensor_mm / (stack.front.cos_theta_eff * cos_inc)
    e = mean_hit * np.exp(sigma * rng.standard_normal(len(tau)) - sigma**2 / 2)
    half = stack.n_cells * stack.cell_size_mm / 2
    ix = np.floor((x + half) / stack.cell_size_mm).astype(np.int64)
    iy = np.floor((y + half) / stack.cell_size_mm).astype(np.int64)
    inside = (ix >= 0) & (ix < stack.n_cells) & (iy >= 0) & (iy < stack.n_cells)  # the rest leaks sideways
    shower, layer, ix, iy, e = shower[inside], layer[inside], ix[inside], iy[inside], e[inside]
    flat = ((shower * stack.n_layers + layer) * stack.n_cells + ix) * stack.n_cells + iy
    shape = (n, stack.n_layers, stack.n_cells, stack.n_cells)
    cells = np.bincount(flat, weights=e, minlength=math.prod(shape)).reshape(shape)
    return Batch(cells, np.bincount(shower, minlength=n), x[inside], y[inside], z[inside], layer, e)


def _spot_depths(energy_gev: np.ndarray, particle: str, stack: EcalStack, cos_inc: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per shower (T, α) from the correlated log-normal; spots ~ Γ(α, β) from the shower start; photons
    first travel an exponential conversion depth. Returns each spot's shower, τ = t/T and its depth from the face."""
    n = len(energy_gev)
    front = stack.front
    mean_ln_t, mean_ln_a, sigma_t, sigma_a, rho = longitudinal_parameters(energy_gev, front)
    z1, z2 = rng.standard_normal((2, n))
    c1, c2 = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
    t_max = np.maximum(np.exp(mean_ln_t + sigma_t * (c1 * z1 + c2 * z2)), 1.0)
    alpha = np.maximum(np.exp(mean_ln_a + sigma_a * (c1 * z1 - c2 * z2)), 1.1)
    start = rng.exponential(CONVERSION_X0, n) if particle == "photon" else np.zeros(n)
    per_mev = front.e_hat * front.cos_theta_eff * cos_inc / front.de_cell_mev
    n_spots = rng.poisson(energy_gev * 1000.0 * per_mev)
    shower = np.repeat(np.arange(n), n_spots)
    t = rng.gamma(alpha[shower]) * (t_max / (alpha - 1.0))[shower]
    return shower, t / t_max[shower], start[shower] + t


def _spot_positions(energy_gev: np.ndarray, tau: np.ndarray, layer: np.ndarray, stack: EcalStack,
                    cos_inc: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Core or halo radius at the spot's τ, uniform φ, projected on the layer's sensor along the tilted axis."""
    media = stack.media
    z_eff = np.array([m.z_eff for m in media])[layer]
    fs = np.array([m.fs for m in media])[layer]
    rm = np.array([m.rm_mm for m in media])[layer]
    r_core, r_tail, p = radial_parameters(energy_gev, tau, z_eff, fs, stack.front.e_hat)
    u = np.minimum(rng.random(len(tau)), 1.0 - 1e-9)
    radius = np.where(rng.random(len(tau)) < p, r_core, r_tail) * rm * np.sqrt(u / (1.0 - u))
    phi = rng.uniform(0.0, 2.0 * math.pi, len(tau))
    z = stack.sensor_z_mm[layer] + rng.random(len(tau)) * stack.sensor_mm
    tan_inc = math.sqrt(max(1.0 - cos_inc**2, 0.0)) / cos_inc
    x = (z - stack.axis_centre_z_mm) * tan_inc + radius * np.cos(phi) / cos_inc
    return x, radius * np.sin(phi), z
