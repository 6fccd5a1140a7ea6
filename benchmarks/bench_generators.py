r"""Generative surrogates against the reference shower simulator: time per shower and fidelity.

Simulates photon showers (uniform in energy) with ``simulate_showers``, trains each surrogate on them
(``caloflow`` and ``calofast`` on a coarse 6 × 10 × 10 grid caloflow can hold, ``calohits`` and ``pointcloud`` on
the full ILD-like 30 × 24 × 24 grid; ``--grid`` sets one grid for all), samples as many showers as a
held-out simulated sample has, conditioned on its energies, and reports:

- time per shower at batch 1 and batch 1000 (the simulator's own ``ms_per_shower``, the generators'
  ``ms_per_sample``; 2 CPU cores, so both are CPU figures), each the best of ``--repeats`` runs so that
  both sides are measured in the machine's quietest moment (the simulator's batch-1 time is the best of 5
  single showers). Torch uses ``PHYSAGENT_WORKERS`` threads (default: every core; calofast and calohits sample
  on one);
  on a machine other processes keep busy, ``PHYSAGENT_WORKERS=1`` avoids OpenMP threads spin-waiting for a
  busy core;
- fidelity from ``compare_samples`` against the held-out simulation: classifier AUC (GBDT and MLP) on the
  high-level shower observables and W1/σ of the key observables. The same comparison of the held-out sample
  with another independent simulated one is the floor (AUC ≈ 0.5).

Anchors: CaloClouds II is 6× (25 steps) and 46× (distilled) faster than Geant4 on one CPU; the best
CaloChallenge dataset-2 classifier AUC is 0.531 (CaloDREAM). Our simulator is itself a parametrised
(GFlash-like) fast simulation, milliseconds per shower rather than Geant4's seconds.

    python benchmarks/bench_generators.py                      # 2000 showers, 60 epochs (≈ 1 h on 2 cores)
    python benchmarks/bench_generators.py --showers 10000 --models calofast   # ≈ 5 min
    python benchmarks/bench_generators.py --showers 10000 --epochs 60 --learning-rate 3e-3 --models calohits
    python benchmarks/bench_generators.py --showers 400 --epochs 10 --size tiny --models caloflow,pointcloud
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from physagent.tools import Workspace, call_tool

COARSE = {"n_layers": 6, "n_cells": 10}  # caloflow holds at most 600 voxels
GRIDS = {"caloflow": COARSE, "calofast": COARSE, "calohits": {}, "pointcloud": {}}  # {}: the full 30 × 24 × 24
KEY_OBSERVABLES = ("energy_sum_mev", "cog_z_mm", "width_x_mm", "n_hits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--showers", type=int, default=2000, help="training showers")
    parser.add_argument("--held-out", type=int, default=2000, help="held-out simulated showers (sampled as many)")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per measurement (the best is kept)")
    parser.add_argument("--energy-min-gev", type=float, default=10.0)
    parser.add_argument("--energy-max-gev", type=float, default=100.0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate of the training")
    parser.add_argument("--models", default="calofast,caloflow,calohits,pointcloud")
    parser.add_argument("--grid", default=None, help="LAYERSxCELLS for every model, e.g. 30x24 (default: per model)")
    parser.add_argument("--max-points", type=int, default=2000, help="pointcloud: points kept per shower")
    parser.add_argument("--workspace", type=Path, default=None, help="keep artifacts here (default: a temp dir)")
    args = parser.parse_args()
    workspace = Workspace(args.workspace or Path(tempfile.mkdtemp(prefix="bench-generators-")))
    rows = []
    for model in args.models.split(","):
        rows.append(_bench(workspace, model, args))
    _print_table(rows)


def _simulate(workspace: Workspace, args: argparse.Namespace, grid: dict[str, int], n: int, seed: int) -> Any:
    return call_tool("simulate_showers", {
        "n_showers": n, "particle": "photon", "energy_min_gev": args.energy_min_gev,
        "energy_max_gev": args.energy_max_gev, "seed": seed, **grid}, workspace=workspace).result


def _bench(workspace: Workspace, model: str, args: argparse.Namespace) -> dict[str, Any]:
    grid = GRIDS[model]
    if args.grid:
        layers, cells = (int(v) for v in args.grid.lower().split("x"))
        grid = {"n_layers": layers, "n_cells": cells}
    train, held_out = (_simulate(workspace, args, grid, n, seed) for n, seed in ((args.showers, 1), (args.held_out, 2)))
    single = min(_simulate(workspace, args, grid, 1, 10 + i).ms_per_shower for i in range(5))
    batch = min(_simulate(workspace, args, grid, 1000, 3 + 100 * i).ms_per_shower for i in range(args.repeats))
    floor = _compare(workspace, held_out.showers.id, _simulate(workspace, args, grid, args.held_out, 4).showers.id)
    print(f"{model}: simulator {single:.3f} ms/shower (batch 1), {batch:.3f} (batch 1000); "
          f"simulation vs simulation AUC {floor.classifier_auc_gbdt:.3f}", flush=True)

    started = time.perf_counter()
    extra = {"max_points": args.max_points} if model == "pointcloud" else {}
    trained = call_tool("train_generator", {"source": train.showers.id, "model": model, "size": args.size,
                                            "epochs": args.epochs, "learning_rate": args.learning_rate,
                                            "seed": 0, **extra}, workspace=workspace).result
    print(f"  trained {trained.n_parameters:,} parameters in {time.perf_counter() - started:.0f} s "
          f"(best epoch {trained.best_epoch} of {trained.epochs_run})", flush=True)
    one = min((_sample(workspace, trained.generator.id, held_out.showers.id, n=20, batch_size=1)
               for _ in range(args.repeats)), key=lambda r: r.ms_per_sample)
    runs = [_sample(workspace, trained.generator.id, held_out.showers.id, n=None, batch_size=1000)
            for _ in range(args.repeats)]
    many = min(runs, key=lambda r: r.ms_per_sample)
    print(f"  sampled at {one.ms_per_sample:.4f} ms/shower (batch 1), {many.ms_per_sample:.4f} (batch 1000; runs "
          f"{', '.join(f'{r.ms_per_sample:.4f}' for r in runs)})", flush=True)
    fidelity = _compare(workspace, held_out.showers.id, runs[0].samples.id)
    w1 = {f.name: f.w1_over_std for f in fidelity.features}
    return {"model": model, "grid": "×".join(str(v) for v in _grid_shape(grid)), "sim_1": single, "sim_1000": batch,
            "n_train": args.showers, "epochs": f"{trained.best_epoch}/{trained.epochs_run}",
            "train_s": trained.train_wall_s,
            "gen_1": one.ms_per_sample, "gen_1000": many.ms_per_sample, "auc_gbdt": fidelity.classifier_auc_gbdt,
            "auc_gbdt_err": fidelity.classifier_auc_gbdt_err, "auc_mlp": fidelity.classifier_auc_mlp,
            "floor": floor.classifier_auc_gbdt, "w1": {k: w1.get(k, float("nan")) for k in KEY_OBSERVABLES},
            "parameters": trained.n_parameters}


def _sample(workspace: Workspace, generator: str, reference: str, n: int | None, batch_size: int) -> Any:
    arguments = {"generator": generator, "reference": reference, "batch_size": batch_size, "seed": 0}
    if n is not None:
        arguments["n"] = n
    return call_tool("sample_generator", arguments, workspace=workspace, use_cache=False).result


def _compare(workspace: Workspace, reference: str, candidate: str) -> Any:
    return call_tool("compare_samples", {"reference": reference, "candidate": candidate}, workspace=workspace).result


def _grid_shape(grid: dict[str, int]) -> tuple[int, int, int]:
    cells = grid.get("n_cells", 24)
    return (grid.get("n_layers", 30), cells, cells)


def _print_table(rows: list[dict[str, Any]]) -> None:
    import os

    print(f"\ntorch threads: PHYSAGENT_WORKERS={os.environ.get('PHYSAGENT_WORKERS', '(unset: every core)')}")
    header = (f"{'model':<11}{'grid':>10}{'train':>7}{'params':>11}{'sim ms b1':>11}{'sim ms b1k':>11}"
              f"{'gen ms b1':>11}{'gen ms b1k':>11}{'x b1':>8}{'x b1k':>8}{'AUC GBDT':>15}{'AUC MLP':>9}"
              f"{'floor':>7}  W1/σ " + " ".join(KEY_OBSERVABLES))
    print(header)
    for r in rows:
        w1 = " ".join(f"{r['w1'][k]:.3f}" for k in KEY_OBSERVABLES)
        print(f"{r['model']:<11}{r['grid']:>10}{r['n_train']:>7}{r['parameters']:>11,}{r['sim_1']:>11.4f}"
              f"{r['sim_1000']:>11.4f}{r['gen_1']:>11.4f}{r['gen_1000']:>11.4f}{r['sim_1'] / r['gen_1']:>7.2f}×"
              f"{r['sim_1000'] / r['gen_1000']:>7.1f}×{r['auc_gbdt']:>9.3f}±{r['auc_gbdt_err']:.3f}"
              f"{r['auc_mlp']:>9.3f}{r['floor']:>7.3f}  {w1}  (epochs {r['epochs']}, {r['train_s']:.0f} s)")


if __name__ == "__main__":
    main()
