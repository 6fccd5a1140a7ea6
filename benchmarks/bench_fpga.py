r"""FPGA export on this machine: hls4ml conversion and compile time, emulation throughput, ΔAUC against precision.

Two models are trained on small data in the script, then exported with the tools an agent calls:

- the ``mlp`` trigger tagger (jet substructure → 64-32-32 → 2 logits, the hls4ml jet-tagging benchmark's
  shape) on a ``make_jet_dataset`` top-vs-QCD sample (Pythia8; ``--jets-per-class``, default 1,000),
- the anomaly ``autoencoder`` (``autoencoder_search``) on the analytic toy of ``tests/anomaly_toy.py``,
- ``qat``: the mlp trained quantization-aware (brevitas) at 4, 6 and 8 bits, exported through QONNX, beside
  the float mlp rounded after training to ap_fixed<b,4>.

For each: ``export_fpga`` at ap_fixed<16,6> (conversion and g++ compile wall time), ``compare_fixed_point``
(emulation throughput of the bit-accurate C simulation in events/s, and ΔAUC on the test events), then
``scan_precision`` (integer bits from the profiled ranges, the chosen width, and its numpy estimate of ΔAUC per
width) and one ``export_fpga`` per total width W of ``--widths`` at those integer bits: ΔAUC and max |Δ| of
the outputs from the compiled C simulation. Every compile costs ≈ 10–25 s on 2 cores.

Latency and resources are not measured here (they need Vitis HLS, see synthesize_fpga). For context only —
published numbers for other designs on other parts, never our measurements: the hls4ml jet-tagging MLP at
~100 ns (Duarte et al., arXiv:1804.06913), conifer BDTs at ~60 ns (Summers et al., arXiv:2002.02534), and
the CMS AXOL1TL anomaly-detection autoencoder within the Level-1 Global Trigger's 50 ns budget.

    python benchmarks/bench_fpga.py                          # ≈ 15 min on 2 cores
    python benchmarks/bench_fpga.py --widths 6,10,14,18 --models mlp
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from physagent.tools import Workspace, call_tool

ANCHORS = (
    "hls4ml jet-tagging MLP (16-64-32-32-5): ~100 ns latency — Duarte et al., arXiv:1804.06913",
    "conifer BDT: ~60 ns — Summers et al., arXiv:2002.02534",
    "AXOL1TL autoencoder: within the 50 ns budget of the CMS Level-1 Global Trigger",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,autoencoder,qat", help="comma-separated: mlp, autoencoder, qat")
    parser.add_argument("--widths", default="6,8,10,12,14,16,18", help="total bits W to compile at")
    parser.add_argument("--jets-per-class", type=int, default=1000, help="jets per class of the mlp's dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace", type=Path, default=None, help="keep artifacts here (default: a temp dir)")
    args = parser.parse_args()
    workspace = Workspace(args.workspace or Path(tempfile.mkdtemp(prefix="bench-fpga-")))
    widths = [int(w) for w in args.widths.split(",")]
    print("Published anchors (context, not measured here):")
    for line in ANCHORS:
        print(f"  - {line}")
    for name in args.models.split(","):
        if name == "qat":
            _qat(workspace, args)
            continue
        model, dataset, split = {"mlp": _mlp, "autoencoder": _autoencoder}[name](workspace, args)
        _bench(workspace, name, model, dataset, split, widths)


def _qat(workspace: Workspace, args: argparse.Namespace) -> None:
    """The mlp trained quantization-aware at 4, 6, 8 bits beside post-training rounding of the float mlp."""
    float_model, dataset, split = _mlp(workspace, args)
    print(f"  {'bits':>4} {'QAT AUC (torch)':>16} {'QAT AUC (C sim)':>16} {'ΔAUC':>9} {'PTQ ap_fixed<b,4> AUC':>22}"
          f" {'compile s':>10}")
    for bits in (4, 6, 8):
        trained = call_tool("train_tagger", {"dataset": dataset, "model": "mlp", "size": "small", "epochs": 30,
                                             "learning_rate": 3e-3, "batch_size": 64, "seed": args.seed,
                                             "quantize_bits": bits}, workspace=workspace).result
        qat = call_tool("export_fpga", {"model": trained.model.id, "dataset": dataset, "split": split},
                        workspace=workspace).result
        ptq = call_tool("export_fpga", {"model": float_model, "dataset": dataset, "split": split,
                                        "precision": f"ap_fixed<{bits},4>"}, workspace=workspace).result
        print(f"  {bits:>4} {qat.fidelity.auc_float:>16.4f} {qat.fidelity.auc_fixed:>16.4f} "
              f"{qat.fidelity.delta_auc:>+9.5f} {ptq.fidelity.auc_fixed:>22.4f} {qat.compile_s:>10.1f}")


def _mlp(workspace: Workspace, args: argparse.Namespace) -> tuple[str, str, str]:
    start = time.perf_counter()
    dataset = call_tool("make_jet_dataset", {"task": "top_vs_qcd", "n_jets_per_class": args.jets_per_class,
                                             "pt_min_gev": 500.0, "pt_max_gev": 600.0, "n_constituents": 32,
                                             "seed": args.seed}, workspace=workspace).result.dataset
    model = call_tool("train_tagger", {"dataset": dataset.id, "model": "mlp", "size": "small", "epochs": 30,
                                       "learning_rate": 3e-3, "batch_size": 64, "seed": args.seed},
                      workspace=workspace).result
    print(f"\nmlp: {dataset.summary}; trained {model.n_parameters:,} parameters, test AUC {model.test_auc:.4f} "
          f"({time.perf_counter() - start:.0f} s)")
    return model.model.id, dataset.id, "test"


def _autoencoder(workspace: Workspace, args: argparse.Namespace) -> tuple[str, str, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from anomaly_toy import toy_anomaly_dataset

    dataset = toy_anomaly_dataset(workspace, n_background=20_000, n_signal=2_000, s_over_b=0.01, seed=args.seed)
    search = call_tool("autoencoder_search", {"dataset": dataset.id, "train_on": "sidebands", "epochs": 40,
                                              "seed": args.seed}, workspace=workspace).result
    print(f"\nautoencoder: toy anomaly dataset (tests/anomaly_toy.py); {search.n_parameters:,} parameters, test AUC "
          f"{search.auc:.4f}")
    return search.model.id, dataset.id, "test"


def _bench(workspace: Workspace, name: str, model: str, dataset: str, split: str, widths: list[int]) -> None:
    exported = call_tool("export_fpga", {"model": model, "dataset": dataset, "split": split},
                         workspace=workspace).result
    compared = call_tool("compare_fixed_point", {"project": exported.project.id, "dataset": dataset,
                                                 "split": split}, workspace=workspace).result
    fid = compared.fidelity
    print(f"  ap_fixed<16,6>: conversion {exported.conversion_s:.2f} s, g++ compile {exported.compile_s:.1f} s, "
          f"emulation {compared.emulation_events_per_s:,.0f} events/s on {fid.n_events:,} events; "
          f"max |Δ| {fid.max_abs_delta_output:.4g}, ΔAUC {fid.delta_auc:+.5f}")
    # scanned on the same events as the rows below, so the estimate and the C simulation compare like with like
    scan = call_tool("scan_precision", {"model": model, "dataset": dataset, "split": split,
                                        "max_total_bits": max(widths)}, workspace=workspace).result
    bits = scan.integer_bits
    print(f"  scan_precision: {scan.integer_bits_reason}; chose {scan.chosen_precision} after {scan.n_compiles} "
          f"compiles ({scan.compile_s:.0f} s)")
    rows = [_row(workspace, model, dataset, split, width, bits, scan.estimated_delta_auc) for width in widths
            if width > bits]
    print(f"  ΔAUC on the {split} events, per total width W at I = {bits}:")
    print(f"  {'precision':<16} {'ΔAUC (C sim)':>13} {'ΔAUC (estimate)':>16} {'max |Δ| output':>15} {'compile s':>10}")
    for row in rows:
        estimate = f"{row['estimate']:+.5f}" if row["estimate"] is not None else "—"
        print(f"  {row['precision']:<16} {row['delta_auc']:>+13.5f} {estimate:>16} {row['max_delta']:>15.4g} "
              f"{row['compile_s']:>10.1f}")


def _row(workspace: Workspace, model: str, dataset: str, split: str, width: int, bits: int,
         estimates: dict[str, float]) -> dict[str, Any]:
    precision = f"ap_fixed<{width},{bits}>"
    result = call_tool("export_fpga", {"model": model, "dataset": dataset, "split": split, "precision": precision},
                       workspace=workspace).result
    return {"precision": precision, "delta_auc": result.fidelity.delta_auc, "estimate": estimates.get(precision),
            "max_delta": result.fidelity.max_abs_delta_output, "compile_s": result.compile_s}


if __name__ == "__main__":
    main()
