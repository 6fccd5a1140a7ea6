r"""Event generation on a Dask LocalCluster against the local fork pool, and Dask's overhead per task.

(a) events/s of ``generate_events`` (ttbar, p̂T > 500 GeV, MPI off, a fixed number of shards) on the fork pool
    with 1 and 2 workers and on a LocalCluster of 1 and 2 workers (``PHYSAGENT_CLUSTER=local:N``), warm: the
    cluster is started (and its workers have imported physagent) before timing; the start-up is printed apart.
    Each sample's hash must equal the fork pool's.
(b) the cost of one task through :func:`tools._cluster_run.run_on_cluster` (submit, progress topic, result,
    attempts query), from many no-op tasks, against a bare ``client.submit`` + ``result``.
(c) seconds of ``cluster_jets`` (anti-kT R = 0.4 on ttbar, p̂T > 400 GeV) in this process and on a warm
    LocalCluster of 2 workers (one task per 2,000-event chunk); the jets' hashes must agree.

    python benchmarks/bench_cluster.py [--events 4000] [--shards 4] [--tasks 200] [--repeat 2]
                                       [--jet-events 2000 8000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from physagent.tools import Workspace, call_tool, close_cluster, cluster_client
from physagent.tools._cluster_run import ClusterTask, run_on_cluster


def generation(n_events: int, shards: int, workspace: Workspace, repeat: int = 1) -> tuple[float, str]:
    """Seconds (best of ``repeat``: the machine may be shared) and artifact hash of a generate_events call."""
    best, sha = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = call_tool("generate_events", {"process": "ttbar", "n_events": n_events, "pt_hat_min_gev": 500.0,
                                                "mpi": False, "seed": 1, "shards": shards},
                            workspace=workspace, use_cache=False)
        best, sha = min(best, time.perf_counter() - start), outcome.result.events.sha256
    return best, sha


def noop(report: Any) -> int:
    report(1)
    return 0


def overhead_per_task(client: Any, n_tasks: int) -> tuple[float, float]:
    """(ms per task through run_on_cluster, ms per task with a bare submit + result)."""
    tasks = [ClusterTask(noop, (), f"task {i}") for i in range(n_tasks)]
    start = time.perf_counter()
    for _ in run_on_cluster(client, tasks, lambda amount: None):
        pass
    ours = (time.perf_counter() - start) / n_tasks
    start = time.perf_counter()
    futures = [client.submit(noop, lambda amount: None, pure=False) for _ in range(n_tasks)]
    for future in futures:
        future.result()
    bare = (time.perf_counter() - start) / n_tasks
    return 1000 * ours, 1000 * bare


def jet_clustering(n_events: int, workspace: Workspace, repeat: int) -> tuple[dict[str, float], bool]:
    """Seconds (best of ``repeat``) of cluster_jets on ``n_events`` events in this process and on a LocalCluster
    of 2 workers (warmed by one untimed call: the workers import FastJet), and whether the hashes agree."""
    os.environ["PHYSAGENT_CLUSTER"] = "none"
    events = call_tool("generate_events", {"process": "ttbar", "n_events": n_events, "pt_hat_min_gev": 400.0,
                                           "mpi": False, "seed": 2}, workspace=workspace).result.events.id
    seconds, hashes = {}, set()
    for cluster in ("none", "local:2"):
        os.environ["PHYSAGENT_CLUSTER"] = cluster
        if cluster != "none":
            cluster_client()
            call_tool("cluster_jets", {"events": events}, workspace=workspace, use_cache=False)
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            outcome = call_tool("cluster_jets", {"events": events}, workspace=workspace, use_cache=False)
            best = min(best, time.perf_counter() - start)
            hashes.add(outcome.result.jets.sha256)
        seconds[cluster] = best
    close_cluster()
    return seconds, len(hashes) == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many timings per configuration")
    parser.add_argument("--jet-events", type=int, nargs="*", default=[2000, 8000],
                        help="sample sizes for cluster_jets (none: skip part c)")
    args = parser.parse_args()
    workspace = Workspace(tempfile.mkdtemp(prefix="bench-cluster-"))
    rates, hashes = {}, set()
    for workers in (1, 2):
        os.environ["PHYSAGENT_CLUSTER"] = "none"
        os.environ["PHYSAGENT_WORKERS"] = str(workers)
        seconds, sha = generation(args.events, args.shards, workspace, args.repeat)
        rates[f"fork pool, {workers} worker(s)"] = args.events / seconds
        hashes.add(sha)
        os.environ["PHYSAGENT_CLUSTER"] = f"local:{workers}"
        start = time.perf_counter()
        client = cluster_client()
        generation(200, workers, workspace)  # workers import physagent and Pythia once
        print(f"LocalCluster of {workers} worker(s): start-up and first import {time.perf_counter() - start:.1f} s")
        seconds, sha = generation(args.events, args.shards, workspace, args.repeat)
        rates[f"Dask LocalCluster, {workers} worker(s)"] = args.events / seconds
        hashes.add(sha)
        if workers == 2:
            ours, bare = overhead_per_task(client, args.tasks)
        close_cluster()
    print(f"\n(a) ttbar, p̂T > 500 GeV, MPI off: {args.events} events in {args.shards} shards "
          f"(identical hashes: {len(hashes) == 1})")
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:8.0f} events/s")
    for workers in (1, 2):
        ratio = rates[f"Dask LocalCluster, {workers} worker(s)"] / rates[f"fork pool, {workers} worker(s)"]
        print(f"  Dask / fork pool, {workers} worker(s): {ratio:.2f}")
    print(f"\n(b) per task, {args.tasks} no-op tasks on 2 workers: run_on_cluster {ours:.1f} ms "
          f"(progress topic, attempts query), bare submit + result {bare:.1f} ms")
    for n_events in args.jet_events:
        seconds, same = jet_clustering(n_events, workspace, args.repeat)
        print(f"\n(c) cluster_jets on {n_events} ttbar events: this process {seconds['none']:.2f} s, LocalCluster of "
              f"2 workers {seconds['local:2']:.2f} s ({seconds['none'] / seconds['local:2']:.2f}×; identical "
              f"hashes: {same})")


if __name__ == "__main__":  # a LocalCluster's workers start Python afresh and import this file
    main()
