r"""Anomaly-search methods side by side: SIC against the injected S/B, at equal data, with training times.

For each injected signal fraction S/B (default 0, 0.25 %, 0.5 %, 1 %, 2 %) one anomaly dataset is made with
the same seed — the same background events, only the injected signal differs — and every available method
is run on it at its defaults:

- ``autoencoder_search`` (unsupervised), trained on all events (``autoencoder``) and on the sidebands only
  (``autoencoder-sb``); one run per ``--ae-seeds`` seed (default 3), since it depends on the seed,
- ``cwola_hunt`` (CWoLa, weakly supervised), ``cathode_search`` (CATHODE; by default only at S/B = 1 %
  with a tiny flow of at most 20 epochs, since its flow takes minutes on 2 cores),
- ``reference_anomaly_classifier`` idealized (data vs perfect background) and supervised (truth labels):
  upper bounds no real search reaches.

Reported per method and S/B, all on the labelled signal-region test set: AUC, SIC = ε_S/√ε_B at ε_S = 0.2
and the maximum SIC (where ≥ 10 test background events pass); then the local significance of ``bump_hunt``
after keeping the most anomalous 10 % of the events (the plain m_jj fit's Z is the ``none`` row), and the
wall time of the call on this machine. A method whose tool is not registered is skipped with a note.

Data: ``make_anomaly_dataset`` (Pythia8 QCD dijets + W′ → XY, the LHCO R&D selection; slow: every S/B
regenerates the events) or, with ``--toy``, the analytic toy of ``tests/anomaly_toy.py`` (seconds; a
classifier separates its signal almost perfectly, so it tests the machinery and the ordering, not physics).

    python benchmarks/bench_anomaly.py --toy                    # ≈ 10 min on 2 cores
    python benchmarks/bench_anomaly.py --n-background 200000    # the Pythia dataset (hours)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from physagent.tools import Workspace, call_tool, registry

# (row name, tool, arguments beyond dataset and seed)
METHODS: list[tuple[str, str, dict[str, Any]]] = [
    ("autoencoder", "autoencoder_search", {"train_on": "all"}),
    ("autoencoder-sb", "autoencoder_search", {"train_on": "sidebands"}),
    ("cwola", "cwola_hunt", {}),
    ("cathode", "cathode_search", {}),
    ("idealized", "reference_anomaly_classifier", {"method": "idealized"}),
    ("supervised", "reference_anomaly_classifier", {"method": "supervised"}),
]
EFFICIENCY = 0.1  # the bump_hunt cut: keep the most anomalous 10 %


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="use the analytic toy dataset (tests/anomaly_toy.py)")
    parser.add_argument("--s-over-b", default="0,0.0025,0.005,0.01,0.02", help="comma-separated injected S/B")
    parser.add_argument("--n-background", type=int, default=None,
                        help="background events (toy default 20,000; Pythia default 100,000 generated)")
    parser.add_argument("--n-signal", type=int, default=None, help="signal events (default 2,000 toy / 10,000)")
    parser.add_argument("--methods", default=",".join(name for name, _, _ in METHODS))
    parser.add_argument("--ae-seeds", type=int, default=3, help="autoencoder runs with seeds 0 … n−1")
    parser.add_argument("--ae-latent-dim", type=int, default=None, help="autoencoder bottleneck (default: the tool's)")
    parser.add_argument("--cathode-flow-size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--cathode-flow-epochs", type=int, default=20)
    parser.add_argument("--cathode-s-over-b", default="0.01",
                        help="S/B values at which CATHODE runs ('all': every one; its flow takes minutes)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (same background for every S/B)")
    parser.add_argument("--workspace", type=Path, default=None, help="keep artifacts here (default: a temp dir)")
    args = parser.parse_args()
    workspace = Workspace(args.workspace or Path(tempfile.mkdtemp(prefix="bench-anomaly-")))
    wanted = args.methods.split(",")
    methods = _available([m for m in METHODS if m[0] in wanted])
    rows: list[dict[str, Any]] = []
    for s_over_b in (float(v) for v in args.s_over_b.split(",")):
        dataset, made_s = _dataset(workspace, args, s_over_b)
        before = call_tool("bump_hunt", {"source": dataset}, workspace=workspace).result.before
        print(f"S/B = {s_over_b:.2%}: dataset {dataset} ({made_s:.0f} s), plain m_jj fit Z = {before.z_local:.2f}σ "
              f"(N = {before.observed}, B = {before.expected:.0f} ± {before.expected_uncertainty:.0f})", flush=True)
        rows.append({"s_over_b": s_over_b, "method": "none", "z_local": before.z_local})
        for name, tool_name, extra in methods:
            if name == "cathode" and not _cathode_here(args.cathode_s_over_b, s_over_b):
                continue
            rows += _run(workspace, dataset, s_over_b, name, tool_name, _arguments(name, extra, args), args)
    print()
    print(_table(rows))


def _available(methods: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for method in methods:
        if method[1] in registry:
            found.append(method)
        else:
            print(f"note: {method[1]} is not registered in this checkout; skipping {method[0]}", flush=True)
    return found


def _cathode_here(option: str, s_over_b: float) -> bool:
    return option == "all" or any(math.isclose(float(v), s_over_b) for v in option.split(","))


def _arguments(name: str, extra: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if name == "cathode":
        return extra | {"flow_size": args.cathode_flow_size, "flow_epochs": args.cathode_flow_epochs}
    if name.startswith("autoencoder") and args.ae_latent_dim:
        return extra | {"latent_dim": args.ae_latent_dim}
    return extra


def _dataset(workspace: Workspace, args: argparse.Namespace, s_over_b: float) -> tuple[str, float]:
    start = time.perf_counter()
    if args.toy:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from anomaly_toy import toy_anomaly_dataset

        artifact = toy_anomaly_dataset(workspace, n_background=args.n_background or 20_000, s_over_b=s_over_b,
                                       n_signal=args.n_signal or 2_000, seed=args.seed)
        return artifact.id, time.perf_counter() - start
    if "make_anomaly_dataset" not in registry:
        sys.exit("make_anomaly_dataset is not registered in this checkout; run with --toy")
    result = call_tool("make_anomaly_dataset", {
        "n_background_events": args.n_background or 100_000, "n_signal_events": args.n_signal or 10_000,
        "s_over_b": s_over_b, "seed": args.seed}, workspace=workspace).result
    return result.dataset.id, time.perf_counter() - start


def _run(workspace: Workspace, dataset: str, s_over_b: float, name: str, tool_name: str, extra: dict[str, Any],
         args: argparse.Namespace) -> list[dict[str, Any]]:
    seeds = range(args.ae_seeds) if name.startswith("autoencoder") else range(1)
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        try:
            result = call_tool(tool_name, {"dataset": dataset, "seed": seed, **extra}, workspace=workspace).result
        except Exception as error:  # a method failing at one S/B must not lose the others' numbers
            print(f"  {name} (seed {seed}): failed: {error}", flush=True)
            continue
        wall = time.perf_counter() - start
        hunt = call_tool("bump_hunt", {"source": result.scores.id, "selection_efficiency": EFFICIENCY},
                         workspace=workspace).result
        row = {"s_over_b": s_over_b, "method": name, "seed": seed, "auc": result.auc,
               "sic_0p2": result.sic_at_signal_eff_0p2,
               "max_sic": math.nan if result.max_sic is None else result.max_sic, "z_local": hunt.after.z_local,
               "wall_s": wall, "warned": bool(hunt.warnings)}
        print(f"  {name} (seed {seed}): AUC {row['auc']:.3f}, SIC(0.2) {row['sic_0p2']:.2f}, max SIC "
              f"{row['max_sic']:.2f}, Z after cut {row['z_local']:.2f}σ, {wall:.0f} s", flush=True)
        rows.append(row)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    """Markdown table; several autoencoder seeds show as mean [min, max]."""
    lines = ["| S/B | method | AUC | SIC(ε_S=0.2) | max SIC | Z after 10 % cut (σ) | wall (s) |",
             "|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys((r["s_over_b"], r["method"]) for r in rows):
        group = [r for r in rows if (r["s_over_b"], r["method"]) == key]
        if key[1] == "none":
            lines.append(f"| {key[0]:.2%} | no cut (plain m_jj fit) | | | | {group[0]['z_local']:.2f} | |")
            continue
        cells = [_cell([r[k] for r in group]) for k in ("auc", "sic_0p2", "max_sic", "z_local", "wall_s")]
        cells[3] += " †" if any(r["warned"] for r in group) else ""
        label = key[1] + (f" ({len(group)} seeds)" if len(group) > 1 else "")
        lines.append(f"| {key[0]:.2%} | {label} | " + " | ".join(cells) + " |")
    lines.append("\n† bump_hunt warned (a reference's scores, a poor fit, or few sideband events): see its warnings.")
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    if len(values) == 1:
        return f"{finite[0]:.2f}" if abs(finite[0]) < 100 else f"{finite[0]:.0f}"
    return f"{statistics.fmean(finite):.2f} [{min(finite):.2f}, {max(finite):.2f}]"


if __name__ == "__main__":
    main()
