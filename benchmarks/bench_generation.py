r"""Throughput of event generation and jet clustering against the bare libraries.

(a) events/s of ``generate_events`` against bare ``pythia8mc`` ``nextBatch`` with identical settings
    (ttbar, p̂T > 500 GeV, MPI off), on one core and on all cores; target ≥ 0.9 of bare Pythia per
    core and near-linear scaling in cores.
(b) jets/s of ``cluster_jets`` (with N-subjettiness, soft drop and constituents) against FastJet's
    own awkward interface (clustering only) on the same events.

    python benchmarks/bench_generation.py [--events 3000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time

import awkward as ak
import fastjet
import numpy as np

from physagent.tools import Workspace, call_tool, capture_fd_stdout
from physagent.tools.simulate.events import process_settings

SETTINGS = process_settings("ttbar", 13.6, 500.0, None, None, None, "default", (0, 0, 0),
                            (False, True, True, True), [])


def bare_pythia(n_events: int, seed: int = 1) -> float:
    """Seconds for bare pythia8mc: init + nextBatch(n) with our settings."""
    import pythia8mc

    start = time.perf_counter()
    with capture_fd_stdout():
        pythia = pythia8mc.Pythia("", False)
        for line in [*SETTINGS, "Print:quiet = on", "Random:setSeed = on", f"Random:seed = {seed}"]:
            pythia.readString(line)
        pythia.init()
        batch = pythia.nextBatch(n_events, errorMode="skip")
    assert len(batch) > 0.99 * n_events
    return time.perf_counter() - start


def bare_pythia_parallel(n_events: int, cores: int) -> float:
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        pool.starmap(bare_pythia, [(n_events // cores, seed + 1) for seed in range(cores)])
    return time.perf_counter() - start


def tool_generation(n_events: int, cores: int, workspace: Workspace) -> tuple[float, str]:
    os.environ["PHYSAGENT_WORKERS"] = str(cores)
    start = time.perf_counter()
    outcome = call_tool("generate_events", {"process": "ttbar", "n_events": n_events, "pt_hat_min_gev": 500.0,
                                            "mpi": False, "seed": 1, "shards": cores},
                        workspace=workspace, use_cache=False)
    return time.perf_counter() - start, outcome.result.events.id


def bench_generation(n_events: int, workspace: Workspace) -> str:
    cores = os.cpu_count() or 1
    bare_1 = n_events / bare_pythia(n_events)
    tool_1_s, events_id = tool_generation(n_events, 1, workspace)
    tool_1 = n_events / tool_1_s
    bare_n = n_events * cores / bare_pythia_parallel(n_events * cores, cores)
    tool_n = n_events * cores / tool_generation(n_events * cores, cores, workspace)[0]
    print(f"(a) generate_events, ttbar p̂T > 500 GeV, MPI off, {n_events} events per core")
    for label, bare, ours in (("1 core ", bare_1, tool_1), (f"{cores} cores", bare_n, tool_n)):
        print(f"    {label}: bare nextBatch {bare:7.1f} ev/s | generate_events {ours:7.1f} ev/s"
              f" | ratio {ours / bare:.2f}")
    print(f"    scaling of generate_events 1 → {cores} cores: {tool_n / tool_1:.2f}x")
    return events_id


def bench_clustering(events_id: str, workspace: Workspace) -> None:
    particles = ak.from_parquet(workspace.get_artifact(events_id).path, columns=["particles"]).particles
    pid = abs(particles.pid)
    visible = particles[(pid != 12) & (pid != 14) & (pid != 16)]
    vectors = ak.zip({"px": ak.values_astype(visible.px, np.float64), "py": ak.values_astype(visible.py, np.float64),
                      "pz": ak.values_astype(visible.pz, np.float64), "E": ak.values_astype(visible.e, np.float64)})
    start = time.perf_counter()
    with capture_fd_stdout():
        jets = fastjet.ClusterSequence(vectors, fastjet.JetDefinition(fastjet.antikt_algorithm, 1.0)).inclusive_jets(
            min_pt=200.0)
    bare_s = time.perf_counter() - start
    n_jets = int(ak.sum(ak.num(jets)))
    start = time.perf_counter()
    outcome = call_tool("cluster_jets", {"events": events_id, "radius": 1.0, "pt_min_gev": 200.0, "eta_max": 10.0},
                        workspace=workspace, use_cache=False)
    tool_s = time.perf_counter() - start
    print(f"(b) cluster_jets, anti-kT R=1.0, pT > 200 GeV, {len(particles)} events, {n_jets} jets")
    print(f"    fastjet awkward clustering only {n_jets / bare_s:9.1f} jets/s | cluster_jets with substructure "
          f"{outcome.result.n_jets / tool_s:9.1f} jets/s | ratio {bare_s / tool_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events per core (default 3000)")
    n_events = parser.parse_args().events
    with tempfile.TemporaryDirectory() as home:
        workspace = Workspace(home)
        events_id = bench_generation(n_events, workspace)
        bench_clustering(events_id, workspace)


if __name__ == "__main__":
    main()
