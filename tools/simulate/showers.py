r"""``simulate_showers``: electromagnetic showers in a highly granular Si-W sampling calorimeter (ILD-like ECAL).

The reference simulator for calorimeter surrogates: it writes cell grids in the CaloChallenge HDF5
format and the energy deposits as point clouds (a ``showers`` artifact, see :mod:`tools.simulate._calo`),
fast enough to make training sets, with a physics model that can be checked against its formulas.
Units: incident energy E in GeV; deposits in MeV; lengths in mm; depths t in radiation lengths X0.

**Calorimeter.** ``n_layers`` layers of [W absorber | Si sensor | readout gap]; the last ``n_thick_layers``
have the thicker absorber (ILD: 20 × 2.1 mm + 10 × 4.2 mm W, 0.5 mm Si, ≈ 24 X0). W: X0 = 3.504 mm,
Molière radius R_M = 9.327 mm, E_c = 7.97 MeV, dE/dx_min = 2.21 MeV/mm; Si: X0 = 93.7 mm, E_c = 40.19 MeV,
dE/dx_min = 0.388 MeV/mm (PDG); the gap adds length only. The sensors are read out in ``n_cells`` ×
``n_cells`` square cells of ``cell_size_mm``, centred on the shower axis (a tilted axis crosses the
window centre in the sensor of layer ``n_layers // 3``, near the maximum). Each layer structure is an
effective medium (Grindhammer–Peters, mass-weighted w_i): Z_eff = Σ w_i Z_i, 1/X0 = Σ w_i/X0_i,
R_M = E_s / Σ(w_i E_c,i/X0_i) with E_s = 21.2 MeV, E_c = X0 Σ(w_i E_c,i/X0_i), sampling frequency
F_S = X0,eff / pitch, e/mip ratio ê = 1/(1 + 0.007 (Z_W − Z_Si)), MIP sampling fraction
f_mip = ΔE_Si / (ΔE_W + ΔE_Si) and electromagnetic sampling fraction s = ê·f_mip (2.8 % front, 1.4 % rear).

**Longitudinal profile** (Grindhammer & Peters, hep-ex/0001020; Grindhammer, Rudowicz, Peters, NIM A290
(1990) 469; as in Geant4 GFlash): dE/dt = E·β^α t^{α−1} e^{−βt}/Γ(α), β = (α − 1)/T, y = E/E_c of the
front medium, per shower (ln T, ln α) drawn from a correlated Gaussian with

    ⟨ln T⟩ = ln(ln y − 0.812 − 0.55/F_S − 0.69 (1 − ê)),   σ(ln T) = (−2.5 + 1.25 ln y)⁻¹,
    ⟨ln α⟩ = ln(0.81 + (0.458 + 2.26/Z_eff) ln y − 0.476/F_S), σ(ln α) = (−0.82 + 0.79 ln y)⁻¹,
    ρ(ln T, ln α) = 0.784 − 0.023 ln y.

So the median shower maximum grows as ln E, by 1 X0 per e-fold of energy. Electrons and positrons
start at the front face; a photon first converts after an exponential depth of mean 9/7 X0, which puts
its maximum ≈ 1.3 X0 deeper. θ tilts the axis in the x–z plane: each layer is 1/cos θ thicker along it.

**Spots.** A shower is split into sensor hits, one per charged-track crossing of a sensor (Amaldi):
N ~ Poisson(E·ê·⟨cos⟩·cos θ / ΔE_cell), ΔE_cell the MIP loss in one front layer, ⟨cos⟩ = cos(E_s/(πE_c))
(≈ 5,000 hits for 50 GeV). Each spot gets a depth t ~ Γ(α, β) from the shower start; spots in a rear
layer are kept with probability ΔE_cell,front/ΔE_cell,layer (fewer crossings per deposited energy),
spots beyond the last layer leak out. Its radius follows the core + halo profile at τ = t/T:

    f(r) = p·2r R_C²/(r² + R_C²)² + (1 − p)·2r R_T²/(r² + R_T²)²,   r = R·√(u/(1 − u)),

with R_C(τ), R_T(τ) (in effective R_M of the layer) and p(τ) the GP parametrisation for sampling media
(:func:`tools.simulate._showers.radial_parameters`), φ uniform; it is placed in its layer's sensor
(uniform depth in the Si) and projected along the tilted axis. Its energy is the MIP deposit of a
crossing, ΔE_Si/(⟨cos⟩ cos θ), times a unit-mean log-normal (Landau-like tail) of relative variance v
chosen so that the front section samples with σ/E = ``sampling_term``/√E; the mean visible energy of a
layer is then s·(energy deposited in it). Hits outside the window leak sideways. Cells sum the hits,
then get Gaussian noise (``noise_mev``) and are zeroed below ``threshold_mev`` (and below 0).

**Measured with the defaults** (1,000 showers per energy at 10, 20, 50, 100 GeV; layer-calibrated energy
Σ E_layer/s_layer): electrons σ/E = 17.6 %/√E ⊕ 1.0 %, photons 18.4 %/√E ⊕ 1.4 % (CALICE SiW prototype:
16.6 %/√E ⊕ 1.1 %, arXiv:0805.4833); calibrated response 98.5–99 % of E (the rest leaks); a 50 GeV shower
has ≈ 4,400 points in ≈ 700 cells and takes ≈ 3.5 ms. The raw visible energy falls from 2.6 % to 2.4 % of E
between 10 and 100 GeV (electrons), because deeper showers put more energy in the coarser rear section.

Output: one ``showers`` artifact — ``showers.h5`` (CaloChallenge: ``incident_energies`` (N, 1) and
``showers`` (N, layers·cells²) in MeV) and ``points.parquet`` (per shower ``hits: var * {x_mm, y_mm, z_mm,
layer, e_mev}``, the deposits inside the window, before noise); and a ``plot`` artifact with the mean
longitudinal profile and the visible-vs-incident energy response. ``showers.h5`` is a valid CaloChallenge
file as it stands (``read_calochallenge`` reads it back, geometry included, from its attributes).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.simulate import _showers
from physagent.tools.simulate._calo import CaloGeometry, Showers, write_showers
from physagent.tools.simulate._showers import Batch, EcalStack

__all__ = ["ShowerSample", "simulate_showers"]

Particle = Literal["photon", "electron", "positron"]
_SPOTS_PER_BATCH = 2_000_000  # bounds memory; a fixed function of the request, so batches are reproducible


class ShowerSample(ToolResult):
    """Simulated calorimeter showers and headline numbers about them."""

    showers: Artifact = Field(description="Showers artifact (kind 'showers'): CaloChallenge HDF5 cells in MeV "
                              "and the deposits as a point cloud.")
    plot: Artifact = Field(description="PNG of the mean longitudinal profile and the energy response.")
    n_showers: int = Field(description="Number of showers simulated.")
    particle: str = Field(description="Incident particle: photon, electron or positron.")
    theta_deg: float = Field(description="Incidence angle to the layer normal, in degrees.")
    n_layers: int = Field(description="Sampling layers of the calorimeter.")
    mean_incident_energy_gev: float = Field(description="Mean incident energy, in GeV.")
    mean_visible_energy_mev: float = Field(description="Mean energy seen in the silicon per shower, in MeV "
                                           "(after noise and threshold).")
    sampling_fraction: float = Field(description="Mean visible over mean incident energy (dimensionless).")
    response: float = Field(description="Mean layer-calibrated energy Σ E_layer/s_layer over incident energy "
                            "(1 − leakage).")
    relative_resolution: float = Field(description="RMS of calibrated over incident energy (σ/E, dimensionless).")
    mean_hits_per_shower: float = Field(description="Mean number of cells above threshold per shower.")
    mean_points_per_shower: float = Field(description="Mean number of deposit points per shower.")
    mean_shower_max_layer: float = Field(description="Layer (0-based, interpolated) of the maximum of the "
                                         "mean longitudinal profile.")
    mean_shower_max_x0: float = Field(description="Depth of that maximum along the shower axis, in X0.")
    wall_s: float = Field(description="Wall time of the whole call (simulation, files, plot), in seconds.")
    ms_per_shower: float = Field(description="Simulation wall time per shower (without writing), in milliseconds.")


@tool(category="simulate", version="1")
def simulate_showers(
    n_showers: Annotated[int, Field(ge=1, le=10_000, description="Number of showers to simulate.")] = 100,
    particle: Annotated[Particle, Field(description="Incident particle: 'photon', 'electron' or 'positron'.",
                                        json_schema_extra={"x-phrases": {"gamma": "photon", "e-": "electron",
                                                                         "e+": "positron"}})] = "photon",
    energy_gev: Annotated[float, Field(ge=1, le=1000, description="Incident energy of every shower, in GeV "
                                       "(ignored when energy_min_gev and energy_max_gev give a range).")] = 50.0,
    energy_min_gev: Annotated[float | None, Field(ge=1, le=1000, description="Lowest incident energy of a "
                                                  "spectrum, in GeV (give energy_max_gev too).")] = None,
    energy_max_gev: Annotated[float | None, Field(ge=1, le=1000, description="Highest incident energy of a "
                                                  "spectrum, in GeV (give energy_min_gev too).")] = None,
    spectrum: Annotated[Literal["uniform", "log_uniform"], Field(
        description="Shape of the energy spectrum between energy_min_gev and energy_max_gev.")] = "uniform",
    theta_deg: Annotated[float, Field(ge=0, le=60, description="Incidence angle to the layer normal, in "
                                      "degrees (axis tilted in the x–z plane).")] = 0.0,
    n_layers: Annotated[int, Field(ge=1, le=100, description="Number of sampling layers.")] = 30,
    n_thick_layers: Annotated[int | None, Field(
        ge=0, le=100, description="How many of the last layers have the thick absorber (None: the last third, "
                                  "10 of ILD's 30).",
        json_schema_extra={"x-phrases": {"no thick rear section": 0, "no thick layers": 0, "no thick section": 0,
                                         "uniform absorber": 0, "no rear section": 0}})] = None,
    absorber_mm: Annotated[float, Field(gt=0, le=50, description="Tungsten absorber per front layer, mm.")] = 2.1,
    thick_absorber_mm: Annotated[float, Field(gt=0, le=50, description="Tungsten absorber per rear layer, "
                                              "mm.")] = 4.2,
    sensor_mm: Annotated[float, Field(gt=0, le=10, description="Silicon sensor thickness, mm.")] = 0.5,
    readout_gap_mm: Annotated[float, Field(ge=0, le=20, description="Readout gap per layer (PCB, glue; "
                                           "length only), mm.")] = 0.8,
    cell_size_mm: Annotated[float, Field(gt=0, le=100, description="Square cell size, mm.")] = 5.0,
    n_cells: Annotated[int, Field(ge=2, le=128, description="Cells per side of the lateral window.")] = 24,
    sampling_term: Annotated[float, Field(ge=0, le=1, description="Stochastic term a of the front section, "
                                          "σ/E = a/√E with E in GeV (CALICE SiW: 0.166).")] = 0.17,
    noise_mev: Annotated[float, Field(ge=0, le=10, description="Gaussian noise per cell, MeV (a MIP in "
                                      "0.5 mm Si is ≈ 0.15 MeV).")] = 0.0,
    threshold_mev: Annotated[float, Field(ge=0, le=10, description="Cells below this are zeroed, MeV "
                                          "(ILD: 0.5 MIP ≈ 0.075 MeV).")] = 0.0,
    points: Annotated[bool, Field(description="Also write the deposits as a point cloud (points.parquet).")]
    = True,
    seed: Annotated[int, Field(ge=0, description="Random seed; same seed, identical files.")] = 0,
    *,
    ctx: ToolContext,
) -> ShowerSample:
    """Simulate electromagnetic showers in a granular Si-W calorimeter (ILD-like ECAL) for surrogate training.

    Returns CaloChallenge-format cell energies in MeV plus the deposits as a point cloud, and the
    sampling fraction, resolution, hits per shower and depth of the shower maximum.
    """
    started = time.perf_counter()
    if n_thick_layers is None:
        n_thick_layers = n_layers // 3
    if n_thick_layers > n_layers:
        raise ToolInputError.for_param("simulate_showers", "n_thick_layers", n_thick_layers,
                                       f"exceeds n_layers={n_layers}. Ask for at most {n_layers} thick layers.")
    stack = EcalStack(n_layers, n_thick_layers, absorber_mm, thick_absorber_mm, sensor_mm, readout_gap_mm,
                      cell_size_mm, n_cells)
    energies = _incident_energies(n_showers, energy_gev, energy_min_gev, energy_max_gev, spectrum, seed)
    settings = {"theta_deg": theta_deg, "particle": particle, "sampling_term": sampling_term,
                "noise_mev": noise_mev, "threshold_mev": threshold_mev}
    simulating = time.perf_counter()
    cells, batches = _simulate(ctx, energies, stack, settings, seed)
    ms_per_shower = 1000.0 * (time.perf_counter() - simulating) / n_showers
    hits = _points(batches) if points else None
    geometry = CaloGeometry(n_layers, n_cells, n_cells, cell_size_mm, round(stack.depth_mm / n_layers, 4))
    extra = _extra(stack, settings, seed)
    pending = ctx.new_artifact("showers")
    shower_set = Showers(energies, cells, geometry, np.full(n_showers, theta_deg), particle, hits, extra)
    write_showers(shower_set, pending.directory)
    return _describe(ctx, pending, shower_set, batches, stack, (started, ms_per_shower))


def _incident_energies(n: int, energy_gev: float, low: float | None, high: float | None, spectrum: str,
                       seed: int) -> np.ndarray:
    if low is None and high is None:
        return np.full(n, float(energy_gev))
    if low is None or high is None:
        given, missing = ("energy_min_gev", "energy_max_gev") if high is None else ("energy_max_gev", "energy_min_gev")
        raise ToolInputError.for_param("simulate_showers", missing, None, f"must be given with {given} to form a "
                                       f"range. Give both, or neither and set energy_gev for a fixed energy.")
    if low >= high:
        raise ToolInputError.for_param("simulate_showers", "energy_min_gev", low, f"must be below "
                                       f"energy_max_gev={high}. Swap them, or use energy_gev for one energy.")
    rng = np.random.default_rng([seed, 2**31])  # its own stream: energies do not shift the shower draws
    if spectrum == "log_uniform":
        return np.exp(rng.uniform(math.log(low), math.log(high), n))
    return rng.uniform(low, high, n)


def _simulate(ctx: ToolContext, energies: np.ndarray, stack: EcalStack, settings: dict[str, Any],
              seed: int) -> tuple[np.ndarray, list[Batch]]:
    """Batch by batch (bounded memory); batch i draws from the generator seeded with (seed, i)."""
    spots_per_shower = float(energies.max()) * 1000.0 / stack.front.de_cell_mev
    size = int(min(max(_SPOTS_PER_BATCH // max(spots_per_shower, 1.0), 1), 500))
    cells = np.zeros((len(energies), stack.n_layers, stack.n_cells, stack.n_cells), dtype=np.float32)
    batches = []
    with ctx.progress("showers", total=len(energies), unit="showers") as bar:
        for index, start in enumerate(range(0, len(energies), size)):
            rng = np.random.default_rng([seed, index])
            chunk = energies[start:start + size]
            batch = _showers.simulate_batch(chunk, settings["theta_deg"], settings["particle"], stack,
                                            settings["sampling_term"], rng)
            cells[start:start + len(chunk)] = _readout(batch.cells_mev, settings, rng)
            batch.cells_mev = np.empty(0)  # the grid is in ``cells`` now
            batches.append(batch)
            bar.advance(len(chunk))
    return cells, batches


def _readout(cells: np.ndarray, settings: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise on every cell, then zero suppression below the threshold (and below zero)."""
    if settings["noise_mev"] > 0:
        cells = cells + rng.normal(0.0, settings["noise_mev"], cells.shape)
    cells = np.where(cells > settings["threshold_mev"], cells, 0.0)
    return cells.astype(np.float32)


def _points(batches: list[Batch]) -> Any:
    import awkward as ak

    def join(name: str, dtype: Any) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in batches]).astype(dtype)

    flat = ak.zip({"x_mm": join("x_mm", np.float32), "y_mm": join("y_mm", np.float32),
                   "z_mm": join("z_mm", np.float32), "layer": join("layer", np.int16),
                   "e_mev": join("e_mev", np.float32)})
    return ak.unflatten(flat, join("counts", np.int64))


def _extra(stack: EcalStack, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """What a reader needs beyond the grid: per-layer depth, X0 and sampling fraction, and the settings."""
    return {
        "simulator": "simulate_showers/1", "seed": seed, "stack": asdict(stack), **settings,
        "layer_z_mm": [round(float(z), 4) for z in stack.sensor_z_mm + stack.sensor_mm / 2],
        "layer_x0": [round(float(x), 6) for x in stack.x0_per_layer],
        "sampling_fraction_per_layer": [round(float(s), 6) for s in stack.sampling_fractions],
        "moliere_radius_mm": round(stack.front.rm_mm, 4), "critical_energy_mev": round(stack.front.ec_mev, 4),
    }


def _describe(ctx: ToolContext, pending: Any, showers: Showers, batches: list[Batch], stack: EcalStack,
              timing: tuple[float, float]) -> ShowerSample:
    """The result values, the artifact's metadata and the plot; ``timing``: (call start, ms per shower)."""
    n = len(showers)
    layers = showers.cells_mev.sum(axis=(2, 3), dtype=np.float64)  # (n, layers) visible MeV
    visible = layers.sum(axis=1)
    incident_mev = showers.incident_energy_gev * 1000.0
    calibrated = (layers / stack.sampling_fractions).sum(axis=1) / incident_mev
    theta = float(showers.extra["theta_deg"])
    cos_inc = math.cos(math.radians(theta))
    max_layer = _shower_max_layer((layers / (stack.sampling_fractions * stack.x0_per_layer)).mean(axis=0))
    centres = (stack.x0_edges[:-1] + stack.x0_edges[1:]) / 2
    max_x0 = float(np.interp(max_layer, np.arange(stack.n_layers), centres)) / cos_inc
    n_points = int(sum(int(b.counts.sum()) for b in batches))
    energies = showers.incident_energy_gev
    what = (f"{energies[0]:g} GeV" if np.ptp(energies) == 0 else f"{energies.min():.3g}–{energies.max():.3g} GeV")
    summary = (f"{n:,} {showers.particle} showers of {what} at θ = {theta:g}° in a "
               f"{stack.n_layers}-layer Si-W ECAL ({stack.n_cells}×{stack.n_cells} cells of {stack.cell_size_mm:g} "
               f"mm): {visible.mean():.1f} MeV visible, {np.count_nonzero(showers.cells_mev) / n:.0f} hits per shower")
    per_layer = ("layer_z_mm", "layer_x0", "sampling_fraction_per_layer")  # in the file; too long for metadata
    metadata = {"n_showers": n, "particle": showers.particle, "geometry": asdict(showers.geometry)}
    artifact = pending.finish("showers.h5", summary, metadata | {k: v for k, v in showers.extra.items()
                                                                 if k not in per_layer})
    plot = _plot(ctx, showers, layers, stack, summary)
    return ShowerSample(
        showers=artifact, plot=plot, n_showers=n, particle=showers.particle, theta_deg=theta,
        n_layers=stack.n_layers,
        mean_incident_energy_gev=float(energies.mean()), mean_visible_energy_mev=float(visible.mean()),
        sampling_fraction=float(visible.mean() / incident_mev.mean()), response=float(calibrated.mean()),
        relative_resolution=float(calibrated.std()), mean_hits_per_shower=np.count_nonzero(showers.cells_mev) / n,
        mean_points_per_shower=n_points / n, mean_shower_max_layer=max_layer, mean_shower_max_x0=max_x0,
        wall_s=time.perf_counter() - timing[0], ms_per_shower=timing[1],
    )


def _shower_max_layer(profile: np.ndarray) -> float:
    """The maximum of a profile, refined by a parabola through the three bins around it."""
    peak = int(np.argmax(profile))
    if peak == 0 or peak == len(profile) - 1:
        return float(peak)
    left, centre, right = profile[peak - 1:peak + 2]
    curvature = left - 2 * centre + right
    return float(peak + (0.5 * (left - right) / curvature if curvature < 0 else 0.0))


def _plot(ctx: ToolContext, showers: Showers, layers: np.ndarray, stack: EcalStack, title: str) -> Artifact:
    from matplotlib.figure import Figure

    from physagent.tools.tag._metrics import save_png

    figure = Figure(figsize=(9.0, 3.8))
    profile_ax, response_ax = figure.subplots(1, 2)
    index = np.arange(stack.n_layers)
    profile_ax.step(index, layers.mean(axis=0), where="mid", label="mean visible energy")
    if stack.n_thick_layers:
        profile_ax.axvspan(stack.n_layers - stack.n_thick_layers - 0.5, stack.n_layers - 0.5, color="grey",
                           alpha=0.15, label=f"{stack.thick_absorber_mm:g} mm W layers")
    profile_ax.set_xlabel("layer")
    profile_ax.set_ylabel("visible energy per layer [MeV]")
    profile_ax.legend(fontsize=8)
    incident, visible = showers.incident_energy_gev, layers.sum(axis=1)
    fraction = visible.mean() / (incident.mean() * 1000.0)
    if np.ptp(incident) == 0:  # one energy: the response is a distribution, not a curve
        response_ax.hist(visible, bins=30, histtype="step")
        response_ax.axvline(visible.mean(), color="C1", label=f"mean: sampling fraction {100 * fraction:.2f} %, "
                            f"σ/mean {visible.std() / visible.mean():.3f}")
        response_ax.set_xlabel(f"visible energy at {incident[0]:g} GeV [MeV]")
        response_ax.set_ylabel("showers")
    else:
        response_ax.scatter(incident, visible, s=6, alpha=0.5)
        grid = np.linspace(0.0, incident.max() * 1.05, 50)
        response_ax.plot(grid, grid * 1000.0 * fraction, color="C1", label=f"sampling fraction {100 * fraction:.2f} %")
        response_ax.set_xlabel("incident energy [GeV]")
        response_ax.set_ylabel("visible energy [MeV]")
    response_ax.legend(fontsize=8)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    pending = ctx.new_artifact("plot")
    save_png(figure, pending.directory / "showers.png")
    return pending.finish("showers.png", f"mean longitudinal profile and energy response of {len(showers):,} "
                          f"{showers.particle} showers", {"kind": "shower_profile_response"})
