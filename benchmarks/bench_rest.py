r"""A bounded load test of the REST API on 127.0.0.1: latency and errors under 8 concurrent clients.

Starts the real server (``physagent serve``, uvicorn) on a free loopback port in a subprocess, with a
throw-away workspace, then runs ``--clients`` clients at once. Each client opens a session, makes one
small event sample (20 Drell-Yan events, untimed) and then sends ``--requests`` requests, alternating

- ``GET /tools``: the tool listing, and
- ``POST /tools/summarize?no_cache=true``: a small data tool on its sample (tens of milliseconds of work),

and prints p50/p95/max latency, throughput and errors (non-2xx answers and failed connections) per kind.
Last, one oversized JSON body (``--oversized-mb``, a long ``settings`` list, and ``n_events: 0`` so the tool
never runs) is sent to a tool route: the status, the time to answer and the server's resident memory before
and after say whether the server refuses it unread or parses it.

    python benchmarks/bench_rest.py [--clients 8] [--requests 40] [--oversized-mb 4]
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

SAMPLE = {"process": "drell_yan_mumu", "n_events": 20, "mpi": False, "seed": 1}
HEADER = "X-Physagent-Session"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    """``physagent serve`` on 127.0.0.1:``port``; returns once GET /tools answers (or raises)."""
    physagent = Path(sys.executable).with_name("physagent")
    env = os.environ | {"PHYSAGENT_HOME": str(home), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    env.pop("PHYSAGENT_API_TOKEN", None)
    server = subprocess.Popen([str(physagent), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/tools", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the server did not answer GET /tools within 120 s")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (from /proc; 0 where there is none)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
    return int(kb) / 1024


class Tally:
    """Latencies (s) of successful requests and error counts, per kind of request; thread-safe."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self._lock = threading.Lock()

    def timed(self, kind: str, send: object) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            response = send()  # type: ignore[operator]
        except httpx.HTTPError as exc:
            with self._lock:
                self.errors[kind][type(exc).__name__] += 1
            return None
        elapsed = time.perf_counter() - start
        with self._lock:
            if response.is_success:
                self.latencies[kind].append(elapsed)
            else:
                self.errors[kind][str(response.status_code)] += 1
        return response


# the samples are made one at a time: concurrent in-process Pythia runs can deadlock the server (issue 13 report)
_SETUP = threading.Lock()


def client_run(base: str, requests: int, tally: Tally, ready: threading.Barrier, setup_errors: list[str]) -> None:
    """One client: a session and a sample (untimed), then ``requests`` alternating listing / summarize calls."""
    with httpx.Client(base_url=base, timeout=60) as http:
        try:
            with _SETUP:
                made = http.post("/tools/generate_events", json=SAMPLE)
            made.raise_for_status()
        except httpx.HTTPError as exc:
            setup_errors.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            ready.wait()  # all clients start their timed requests together
        session, sample = made.headers[HEADER], made.json()["artifacts"][0]["id"]
        headers = {HEADER: session}
        for i in range(requests):
            if i % 2 == 0:
                tally.timed("GET /tools", lambda: http.get("/tools", headers=headers))
            else:
                tally.timed("POST summarize", lambda: http.post(
                    "/tools/summarize", params={"no_cache": "true"}, json={"source": sample}, headers=headers))


def oversized(base: str, pid: int, megabytes: float) -> str:
    """Send one JSON body of about ``megabytes`` MB to a tool route; say how the server answered."""
    item = '"Tune:pp = 14",'
    count = int(megabytes * 1e6 / len(item))
    body = ('{"process": "drell_yan_mumu", "n_events": 0, "settings": [' + item * count + '"Tune:pp = 14"]}').encode()
    before = rss_mb(pid)
    start = time.perf_counter()
    try:
        response = httpx.post(f"{base}/tools/generate_events", content=body,
                              headers={"content-type": "application/json"}, timeout=300)
        answer = f"{response.status_code} {response.text[:90]!r}"
    except httpx.HTTPError as exc:
        answer = f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - start
    alive = httpx.get(f"{base}/tools", timeout=30).status_code
    return (f"oversized body ({len(body) / 1e6:.1f} MB): {answer} after {elapsed:.2f} s; "
            f"server RSS {before:.0f} → {rss_mb(pid):.0f} MB; GET /tools afterwards: {alive}")


def report(tally: Tally, wall_s: float) -> None:
    print(f"{'request':16} {'ok':>5} {'errors':>7} {'p50':>8} {'p95':>8} {'max':>8} {'req/s':>7}")
    for kind in sorted(set(tally.latencies) | set(tally.errors)):
        samples = sorted(tally.latencies[kind])
        errors = sum(tally.errors[kind].values())
        if len(samples) >= 2:
            p50, p95 = statistics.median(samples), statistics.quantiles(samples, n=20, method="inclusive")[18]
            figures = f"{1000 * p50:6.0f}ms {1000 * p95:6.0f}ms {1000 * samples[-1]:6.0f}ms"
        else:
            figures = f"{'-':>8} {'-':>8} {'-':>8}"
        print(f"{kind:16} {len(samples):5d} {errors:7d} {figures} {len(samples) / wall_s:7.1f}"
              + (f"   {dict(tally.errors[kind])}" if errors else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients.")
    parser.add_argument("--requests", type=int, default=40, help="Requests per client (half listing, half calls).")
    parser.add_argument("--oversized-mb", type=float, default=4.0, help="Size of the oversized body; 0: skip it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rest-") as scratch:
        port = free_port()
        server = start_server(Path(scratch) / "home", port)
        base = f"http://127.0.0.1:{port}"
        try:
            tally, setup_errors = Tally(), []
            started: list[float] = []
            ready = threading.Barrier(args.clients + 1, action=lambda: started.append(time.perf_counter()))
            clients = [threading.Thread(target=client_run, args=(base, args.requests, tally, ready, setup_errors))
                       for _ in range(args.clients)]
            for client in clients:
                client.start()
            ready.wait()
            for client in clients:
                client.join()
            wall_s = time.perf_counter() - started[0]
            print(f"{args.clients} clients x {args.requests} requests on {base} in {wall_s:.1f} s "
                  f"(after each client's untimed sample); server RSS {rss_mb(server.pid):.0f} MB")
            report(tally, wall_s)
            if setup_errors:
                print(f"clients that could not set up: {len(setup_errors)} ({setup_errors[0]})")
            if args.oversized_mb > 0:
                print(oversized(base, server.pid, args.oversized_mb))
            sessions = len(list((Path(scratch) / "home" / "sessions").iterdir()))
            print(f"session directories on disk: {sessions} (one per client expected)")
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
