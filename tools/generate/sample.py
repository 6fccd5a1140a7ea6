r"""``sample_generator``: draw samples from a trained generator, batched and seeded.

- A ``flow`` generator gives a ``table`` artifact (``samples.parquet``) with one column per feature
  (:func:`~tools.generate._generator_io.column_name` of its expression: ``jets.mass[0]`` → ``jets_mass_0``)
  and one per condition.
- ``caloflow``, ``calofast``, ``calohits`` and ``pointcloud`` generators give a ``showers`` artifact
  (``showers.h5`` in the CaloChallenge layout, cells in MeV, incident energies in GeV in memory); the point
  cloud also writes its points (``points.parquet``) and bins them into the trained geometry's cells.
- a ``pointcloud`` generator trained on jets gives a ``jets`` artifact (``jets.parquet`` in the
  ``cluster_jets`` layout, one jet per event): the generated constituents around a jet axis, the jet's
  pt, eta, phi, mass, e from their four-vector sum, τ_N and m_SD from FastJet, pid = charge = 0 (unknown;
  :mod:`tools.generate._jet_points`). The jet axis η, φ is the reference's leading jet's, else η is drawn
  from the training jets' η distribution and φ uniformly.

Conditions (:mod:`tools.generate._conditions`): for a conditional flow and for jets (``jets.pt[0]``, GeV)
either ``condition_values`` (per condition a value or a [min, max] range, drawn uniformly) or a
``reference`` artifact whose rows give them (cycled when ``n`` exceeds its rows); for showers an
incident-energy range ``energy_min_gev`` … ``energy_max_gev`` (drawn log-uniformly) or the incident
energies of a reference showers artifact. Conditions more than 5 % of the training range outside it are
refused: a generator does not extrapolate.

All randomness comes from one ``numpy.random.Generator(seed)`` drawn in a fixed order (conditions, jet
axes, then the base noise batch by batch), so the same seed gives the same samples — from the stored
artifact, at any ``batch_size`` (up to floating-point rounding of batched matrix products). ``calofast``
reads its per-voxel uniforms from the generator's raw 64-bit words (``bit_generator.random_raw``, two
32-bit uniforms per word, a fixed number of words per shower): the cheapest seeded noise numpy makes.
``calohits`` takes one raw 64-bit word per shower as the key of all its hits' randomness.
Sampling runs in torch's inference mode on :func:`~tools.tag._runtime.torch_threads` threads (calofast and
calohits: one); the reported time covers the network passes, the noise and the hit sampling, not reading the
model (nor building calohits' tables from it) or writing the artifact.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._registry import ToolResult, tool
from physagent.tools.generate._architectures import load_generator
from physagent.tools.generate._conditions import (
    DEFAULT_N,
    ConditionSource,
    flow_conditions,
    jet_axes,
    shower_energies,
)
from physagent.tools.generate.train import GeneratorRef
from physagent.tools.tag._runtime import torch_threads

__all__ = ["GeneratedSamples", "sample_generator"]

ReferenceRef = Annotated[str, Accepts(("table", "jets", "events", "showers")), Field(pattern=ARTIFACT_ID_PATTERN)]


class GeneratedSamples(ToolResult):
    """Samples drawn from a generator, and how fast they came."""

    samples: Artifact = Field(description="The samples: a table artifact (flow), a showers artifact "
                                          "(caloflow, calofast, calohits, pointcloud) in the generator's "
                                          "geometry, or a jets "
                                          "artifact (pointcloud trained on jets).")
    model: str = Field(description="The generator's model: flow, caloflow, calofast, calohits or pointcloud.")
    n_samples: int = Field(description="Rows (showers, jets) drawn.")
    columns: list[str] = Field(description="Columns of a sampled table: features, then conditions (empty for "
                                           "showers and jets).")
    condition_source: ConditionSource = Field(description="Where the conditions came from: none (unconditional), "
                                                          "values, energy_range or reference.")
    seed: int = Field(description="The seed the samples were drawn with.")
    batch_size: int = Field(description="Samples per network call.")
    sample_wall_s: float = Field(description="Wall time of the sampling itself in seconds (without writing).")
    samples_per_s: float = Field(description="Sampling throughput, samples per second.")
    ms_per_sample: float = Field(description="Sampling time per sample in milliseconds.")
    mean_deposit_fraction: float | None = Field(description="Showers: mean of Σ cell energies / incident energy "
                                                            "(dimensionless); None for tables and jets.")


@tool(category="generate", version="1")
def sample_generator(
    generator: Annotated[GeneratorRef, Field(description="Id of a generator artifact from train_generator.")],
    n: Annotated[int | None, Field(ge=1, le=10_000_000, description="Samples to draw; default: as many as the "
                                                                     f"reference has rows, else {DEFAULT_N}.")] = None,
    seed: Annotated[int, Field(ge=0, description="Random seed; same seed, same samples.")] = 0,
    batch_size: Annotated[int, Field(ge=1, le=100_000, description="Samples per network call (speed and memory "
                                                                   "only; the samples do not change).")] = 1000,
    energy_min_gev: Annotated[float | None, Field(gt=0, description="Showers: lowest incident energy in GeV (alone: "
                                                                    "every shower at this energy).")] = None,
    energy_max_gev: Annotated[float | None, Field(gt=0, description="Showers: highest incident energy in GeV; "
                                                                    "energies are drawn log-uniformly.")] = None,
    condition_values: Annotated[dict[str, list[float]] | None, Field(
        description="Conditional flow or jet point cloud: per condition (its expression or column name) a value "
                    "[v] or a range [min, max] drawn uniformly, e.g. {'jets.pt[0]': [500, 600]}.")] = None,
    reference: Annotated[ReferenceRef | None, Field(
        description="Take the conditions as in this artifact: its rows' condition values (table, jets, events; "
                    "jets also give the jet axes) or its showers' incident energies.")] = None,
    ode_steps: Annotated[int | None, Field(ge=1, le=1000, description="pointcloud: ODE steps from noise to "
                                                                      "points (default: the generator's, 25).")] = None,
    ode_solver: Annotated[Literal["midpoint", "euler"], Field(
        description="pointcloud: midpoint (two network calls per step, more accurate) or euler.")] = "midpoint",
    *,
    ctx: ToolContext,
) -> GeneratedSamples:
    """Draw samples from a trained generator: a table (flow), calorimeter showers or jets (point clouds).

    Conditions come from fixed values or ranges (e.g. an incident-energy range in GeV, a jet pT range)
    or from a reference artifact; returns the samples artifact and the sampling speed in ms per sample.
    """
    artifact = ctx.artifact(generator, "generator")
    card = artifact.metadata
    rng = np.random.default_rng(seed)
    if card["model"] == "flow" or "jets" in card:
        given, source = flow_conditions(ctx, card, n, condition_values, reference, energy_min_gev, energy_max_gev, rng)
    else:
        given, source = shower_energies(ctx, card, n, energy_min_gev, energy_max_gev, condition_values, reference, rng)
    axes = jet_axes(ctx, card, reference, len(given), rng) if "jets" in card else None
    model, _ = load_generator(artifact)
    if card["model"] == "flow":
        return _sample_table(ctx, artifact, model, given, source, seed, batch_size, rng)
    ode = (ode_steps or (card.get("showers") or card["jets"]).get("ode_steps", 25), ode_solver)
    if axes is not None:
        return _sample_jets(ctx, artifact, model, (given, axes), source, seed, batch_size, rng, ode)
    return _sample_showers(ctx, artifact, model, given, source, seed, batch_size, rng, ode)


# --- sampling ------------------------------------------------------------------------------------


def _timed_batches(ctx: ToolContext, label: str, n: int, batch_size: int, step: Any) -> tuple[list[Any], float]:
    """Run ``step(start, stop)`` over batches with a progress bar, in torch's inference mode; outputs and wall time.

    calofast runs on one thread: its work is elementwise passes and small tensors, and with another process busy
    on one of 2 cores (load 1.5) two OpenMP threads took 95 µs per shower instead of 8.5 µs (they spin-wait for
    each other); one thread is never that slow."""
    import torch

    out = []
    with torch_threads(), torch.inference_mode(), ctx.progress(f"sample {label}", total=n, unit="samples") as bar:
        if label in ("calofast", "calohits"):
            torch.set_num_threads(1)  # torch_threads restores the count on exit
        start_time = time.perf_counter()
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            out.append(step(start, stop))
            bar.advance(stop - start)
        wall = time.perf_counter() - start_time
    return out, wall


def _sample_table(ctx: ToolContext, artifact: Artifact, model: Any, given: np.ndarray, source: ConditionSource,
                  seed: int, batch_size: int, rng: np.random.Generator) -> GeneratedSamples:
    import awkward as ak
    import torch

    from physagent.tools._io import write_parquet

    card, n = artifact.metadata, len(given)
    z = rng.standard_normal((n, len(card["features"])))
    c = torch.from_numpy(given).float()
    batches, wall = _timed_batches(ctx, "flow", n, batch_size, lambda a, b: model.sample(
        c[a:b], torch.from_numpy(z[a:b]).float()).numpy())
    values = np.concatenate(batches).astype(np.float64)
    columns = [*card["columns"], *card["condition_columns"]]
    table = {name: values[:, i] for i, name in enumerate(card["columns"])} | {
        name: given[:, i] for i, name in enumerate(card["condition_columns"])}
    pending = ctx.new_artifact("table")
    write_parquet(ak.zip(table), pending.directory / "samples.parquet")
    expressions = dict(zip(columns, [*card["features"], *card["conditions"]], strict=True))
    meta = {"generator": artifact.id, "model": "flow", "seed": seed, "n_rows": n, "fields": columns,
            "expressions": expressions, "condition_source": source}
    samples = pending.finish("samples.parquet", f"{n:,} samples of {', '.join(card['features'])} from generator "
                             f"{artifact.id} (seed {seed})", meta)
    return _result(samples, "flow", n, columns, source, seed, batch_size, wall, None)


def _sample_showers(ctx: ToolContext, artifact: Artifact, model: Any, energies: np.ndarray, source: ConditionSource,
                    seed: int, batch_size: int, rng: np.random.Generator, ode: tuple[int, str]) -> GeneratedSamples:
    from physagent.tools.simulate._calo import CaloGeometry, Showers, write_showers

    card = artifact.metadata
    geometry = CaloGeometry(**card["showers"]["geometry"])
    if card["model"] == "caloflow":
        cells, points, wall = _caloflow_cells(ctx, model, energies, geometry, batch_size, rng)
    elif card["model"] == "calofast":
        cells, points, wall = _calofast_cells(ctx, model, energies, geometry, batch_size, rng)
    elif card["model"] == "calohits":
        cells, points, wall = _calohits_cells(ctx, model, energies, geometry, batch_size, rng)
    else:
        cells, points, wall = _pointcloud_cells(ctx, model, card, energies, geometry, batch_size, rng, ode)
    showers = Showers(energies, cells, geometry, None, card["showers"]["particle"], points,
                      {"generator": artifact.id, "model": card["model"], "seed": seed})
    pending = ctx.new_artifact("showers")
    write_showers(showers, pending.directory)
    fraction = cells.reshape(len(energies), -1).sum(1) / (energies * 1000.0)
    meta = {"generator": artifact.id, "model": card["model"], "seed": seed, "n_showers": len(energies),
            "geometry": asdict(geometry), "particle": showers.particle, "condition_source": source,
            "incident_energy_gev_range": [float(energies.min()), float(energies.max())],
            "ode": {"steps": ode[0], "solver": ode[1]} if card["model"] == "pointcloud" else None}
    samples = pending.finish("showers.h5", f"{len(energies):,} {showers.particle} showers "
                             f"({energies.min():.4g}–{energies.max():.4g} GeV) from {card['model']} generator "
                             f"{artifact.id} (seed {seed})", meta)
    return _result(samples, card["model"], len(energies), [], source, seed, batch_size, wall, float(fraction.mean()))


def _caloflow_cells(ctx: ToolContext, model: Any, energies: np.ndarray, geometry: Any, batch_size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, None, float]:
    import torch

    z_layers = rng.standard_normal((len(energies), geometry.n_layers))
    e = torch.from_numpy(energies).float()

    def step(a: int, b: int) -> np.ndarray:
        z_cells = torch.from_numpy(rng.standard_normal((b - a, geometry.n_voxels))).float()
        return model.sample(e[a:b], torch.from_numpy(z_layers[a:b]).float(), z_cells).numpy()

    batches, wall = _timed_batches(ctx, "caloflow", len(energies), batch_size, step)
    return np.concatenate(batches), None, wall


def _calofast_cells(ctx: ToolContext, model: Any, energies: np.ndarray, geometry: Any, batch_size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, None, float]:
    import torch

    z_layers = torch.from_numpy(rng.standard_normal((len(energies), geometry.n_layers))).float()
    e = torch.from_numpy(energies).float()
    words = (geometry.n_voxels + 1) // 2  # 64-bit words per shower, each two int32 voxel uniforms

    def step(a: int, b: int) -> np.ndarray:
        raw = rng.bit_generator.random_raw((b - a) * words).view(np.int32).reshape(b - a, 2 * words)
        bits = torch.from_numpy(np.ascontiguousarray(raw[:, :geometry.n_voxels]))
        return model.sample(e[a:b], z_layers[a:b], bits).numpy()

    batches, wall = _timed_batches(ctx, "calofast", len(energies), batch_size, step)
    return np.concatenate(batches), None, wall


def _calohits_cells(ctx: ToolContext, model: Any, energies: np.ndarray, geometry: Any, batch_size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, None, float]:
    """Stage-1 normals and one 64-bit key per shower drawn up front: the showers do not depend on the batches. The
    alias and weight tables are built from the weights before the clock starts, as loading the weights is."""
    import torch

    model.prepare_sampling()
    z_layers = torch.from_numpy(rng.standard_normal((len(energies), geometry.n_layers))).float()
    keys = rng.bit_generator.random_raw(len(energies))
    e = torch.from_numpy(energies).float()
    batches, wall = _timed_batches(ctx, "calohits", len(energies), batch_size,
                                   lambda a, b: model.sample(e[a:b], z_layers[a:b], keys[a:b]).numpy())
    return np.concatenate(batches), None, wall


def _pointcloud_cells(ctx: ToolContext, model: Any, card: dict[str, Any], energies: np.ndarray, geometry: Any,
                      batch_size: int, rng: np.random.Generator, ode: tuple[int, str]) -> tuple[np.ndarray, Any, float]:
    from physagent.tools.generate._pointcloud import bin_points

    max_points = card["showers"]["points_per_shower"][1]  # a flow's far tail must not pad every shower of a batch
    points, wall = _point_clouds(ctx, model, energies[:, None], max_points, batch_size, rng, ode)
    for p in points:  # the layer rounded into the grid
        p[:, 2] = np.clip(np.rint(p[:, 2]), 0, geometry.n_layers - 1)
    return bin_points(points, geometry), _hits(points, card["showers"]["layer_z_mm"]), wall


def _point_clouds(ctx: ToolContext, model: Any, given: np.ndarray, max_points: int, batch_size: int,
                  rng: np.random.Generator, ode: tuple[int, str]) -> tuple[list[np.ndarray], float]:
    """Point clouds (physical units, weight last) for conditions (N, K): (n, W) from the set flow, points by
    integrating the velocity, weights scaled to sum to W; and the wall time."""
    import torch

    from physagent.tools.generate._pointcloud import pad_points

    cond = torch.from_numpy(given).float()
    z_sets = rng.standard_normal((len(given), 2))
    dim = model.spec.dim

    def step(a: int, b: int) -> list[np.ndarray]:
        counts, totals = model.sample_sets(cond[a:b], torch.from_numpy(z_sets[a:b]).float(), max_points)
        sizes = counts.numpy()
        noise = rng.standard_normal((int(sizes.sum()), dim))
        x0, mask = pad_points(np.split(noise, np.cumsum(sizes)[:-1]), int(sizes.max()), dim)
        raw = model.sample_points(cond[a:b], counts, torch.from_numpy(x0), torch.from_numpy(mask), *ode)
        return [_scaled(raw[i, :k].double().numpy(), float(totals[i])) for i, k in enumerate(sizes)]

    batches, wall = _timed_batches(ctx, "pointcloud", len(given), batch_size, step)
    return [p for batch in batches for p in batch], wall


def _scaled(points: np.ndarray, total: float) -> np.ndarray:
    """The points with their weights (last coordinate) scaled to sum to the sampled total."""
    out = points.copy()
    out[:, -1] *= total / max(out[:, -1].sum(), 1e-30)
    return out


def _sample_jets(ctx: ToolContext, artifact: Artifact, model: Any, given: tuple[np.ndarray, np.ndarray],
                 source: ConditionSource, seed: int, batch_size: int, rng: np.random.Generator, ode: tuple[int, str]
                 ) -> GeneratedSamples:
    from physagent.tools._io import write_parquet
    from physagent.tools.generate._jet_points import assemble_jets

    info, (pt, axes) = artifact.metadata["jets"], given
    points, wall = _point_clouds(ctx, model, pt, info["points_per_jet"][1], batch_size, rng, ode)
    events = assemble_jets(points, pt[:, 0], axes, info["radius"], (info["softdrop"][0], info["softdrop"][1]))
    pending = ctx.new_artifact("jets")
    write_parquet(events, pending.directory / "jets.parquet")
    n = len(pt)
    meta = {"generator": artifact.id, "model": "pointcloud", "seed": seed, "n_events": n, "n_jets": n,
            "algorithm": info.get("algorithm"), "radius": info["radius"], "softdrop_beta": info["softdrop"][0],
            "softdrop_zcut": info["softdrop"][1], "condition_source": source, "ode": {"steps": ode[0],
                                                                                   "solver": ode[1]},
            "jet_pt_condition_gev_range": [float(pt.min()), float(pt.max())]}
    samples = pending.finish("jets.parquet", f"{n:,} leading jets ({pt.min():.4g}–{pt.max():.4g} GeV) with "
                             f"generated constituents from pointcloud generator {artifact.id} (seed {seed})", meta)
    return _result(samples, "pointcloud", n, [], source, seed, batch_size, wall, None)


def _hits(points: list[np.ndarray], layer_z_mm: list[float]) -> Any:
    import awkward as ak

    flat = np.concatenate(points) if points else np.zeros((0, 4))
    layer = flat[:, 2].astype(np.int32)
    hits = ak.zip({"x_mm": flat[:, 0].astype(np.float32), "y_mm": flat[:, 1].astype(np.float32),
                   "z_mm": np.asarray(layer_z_mm, dtype=np.float32)[layer], "layer": layer,
                   "e_mev": flat[:, 3].astype(np.float32)})
    return ak.unflatten(hits, np.array([len(p) for p in points], dtype=np.int64))


def _result(samples: Artifact, model: str, n: int, columns: list[str], source: ConditionSource, seed: int,
            batch_size: int, wall: float, fraction: float | None) -> GeneratedSamples:
    return GeneratedSamples(samples=samples, model=model, n_samples=n, columns=columns, condition_source=source,
                            seed=seed, batch_size=batch_size, sample_wall_s=wall, samples_per_s=n / max(wall, 1e-9),
                            ms_per_sample=1000.0 * wall / n, mean_deposit_fraction=fraction)

