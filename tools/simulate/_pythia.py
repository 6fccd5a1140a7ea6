r"""Pythia8 event generation, the pure core behind ``generate_events``.

Events come from ``Pythia.nextBatch`` (vectorised, awkward output); final-state particles are the
records with ``status > 0`` and the hard process the ones with ``21 <= |status| <= 29`` (Pythia's
status codes, including resonance decays). Each hard-process record carries ``mother1``: the index inside
``partons`` of its nearest hard ancestor along Pythia's ``mother1`` chain (shower copies walked through, so a
W's mother is its top), and ``mother2``: the index of Pythia's ``mother2`` entry when that is a different
hard-process record (the second incoming parton of a 2 → n process), else −1; −1 means none. ``daughter1`` and
``daughter2`` are the inverse links: the first and last record naming it as a mother (a top's b and W). Momenta in
GeV, cross-sections in pb (Pythia's ``sigmaGen`` is in mb; 1 mb = 1e9 pb).

Work is split into seed shards: shard ``i`` gets the ``i``-th word of
``numpy.random.SeedSequence(seed)``, so shards are distinct, and the output depends on
``(seed, shards)`` only — not on how many worker processes ran them. A caller that needs only a
summary of the events (jet features, say) passes ``reduce``: it runs on each shard inside the worker,
so the work is parallel and only its result crosses the process boundary.

Reference: C. Bierlich et al., "A comprehensive guide to the physics and usage of PYTHIA 8.3",
SciPost Phys. Codebases 8 (2022), arXiv:2203.11601.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._cluster import cluster_client
from physagent.tools._pdg import hard_daughters, hard_mothers
from physagent.tools._stdio import capture_fd_stdout
from physagent.tools._workers import worker_pool

__all__ = ["ShardResult", "generate", "hard_mother_links", "invalid_settings", "shard_plan", "try_init"]

PYTHIA_MAX_SEED = 900_000_000
MB_TO_PB = 1e9
_BATCH = 250  # events per nextBatch call: progress granularity, negligible overhead
_QUIET = ("Print:quiet = on", "Next:numberCount = 0")


@dataclass(frozen=True)
class ShardResult:
    """One shard's events and its generator statistics."""

    index: int
    events: Any  # awkward Array, one record per event
    sigma_pb: float
    sigma_err_pb: float
    n_accepted: int
    n_failed: int
    worker: str = ""  # what ran it: "host pid N" in a local process, a Dask worker's address on a cluster
    attempts: int = 1  # 2 after a retry on a Dask cluster
    kept: bool = False  # reused from an earlier run on a Dask cluster that failed in another shard


def shard_plan(n_events: int, shards: int, seed: int) -> list[tuple[int, int]]:
    """(events, Pythia seed) for each shard: near-equal sizes, distinct seeds in [1, 9e8]."""
    sizes = [n_events // shards + (1 if i < n_events % shards else 0) for i in range(shards)]
    words = np.random.SeedSequence(seed).generate_state(shards, dtype=np.uint32)
    return [(size, int(word) % PYTHIA_MAX_SEED + 1) for size, word in zip(sizes, words, strict=True)]


# Pythia instances in threads of one process (a REST server's concurrent calls) hung in construction and
# batch generation; under the GIL they would run one at a time anyway, so in-process runs take turns.
_IN_PROCESS = threading.RLock()


def _new_pythia() -> Any:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in _QUIET:
        pythia.readString(line)
    return pythia


def invalid_settings(settings: list[str]) -> list[tuple[str, str]]:
    """Settings Pythia rejects, each with Pythia's own complaint."""
    with _IN_PROCESS:
        return _rejected(settings)


def _rejected(settings: list[str]) -> list[tuple[str, str]]:
    pythia = _new_pythia()
    rejected = []
    for line in settings:
        with capture_fd_stdout() as out:
            accepted = pythia.readString(line)
        if not accepted:
            rejected.append((line, " ".join(out[0].split()) or "rejected by Pythia"))
    return rejected


def try_init(settings: list[str]) -> str | None:
    """Initialise Pythia with ``settings``; None when it works, else Pythia's message."""
    with _IN_PROCESS:
        return _init_message(settings)


def _init_message(settings: list[str]) -> str | None:
    pythia = _new_pythia()
    with capture_fd_stdout() as out:
        for line in settings:
            pythia.readString(line)
        ok = pythia.init()
    return None if ok else " ".join(out[0].split())[-600:]


def generate_shard(
    settings: list[str], n_events: int, seed: int, index: int, report: Callable[[int], None],
    reduce: Callable[[Any], Any] | None = None, until_eof: bool = False,
) -> ShardResult:
    """Generate ``n_events`` accepted events with one Pythia instance seeded with ``seed``
    (``events`` is ``reduce(events)`` when ``reduce`` is given). ``until_eof``: events come from a Les
    Houches file, and its end stops the shard (fewer events) instead of counting as failures."""
    import awkward as ak

    pythia = _new_pythia()
    with capture_fd_stdout():
        for line in [*settings, "Random:setSeed = on", f"Random:seed = {seed}"]:
            pythia.readString(line)
        if not pythia.init():
            raise RuntimeError("Pythia failed to initialise with the given settings")
    chunks, failed, empty_in_a_row = [], 0, 0
    produced = attempted = 0
    # from a file, a shard owns n_events of its events: a failed one is dropped, not replaced by the next shard's
    while (attempted if until_eof else produced) < n_events:
        want = min(_BATCH, n_events - (attempted if until_eof else produced))
        with capture_fd_stdout():
            batch = pythia.nextBatch(want, errorMode="skip")
        got = len(batch)
        at_end = until_eof and pythia.infoPython().atEndOfFile()
        attempted += want
        failed += 0 if at_end else want - got  # the file running out is not a failure
        empty_in_a_row = 0 if got else empty_in_a_row + 1
        if empty_in_a_row >= 5:
            raise RuntimeError(f"Pythia failed {5 * want} events in a row; check the settings")
        if got:
            chunks.append(_event_records(batch, pythia))
            produced += got
            report(got)
        if at_end:
            break
    if not chunks:
        raise RuntimeError("the Les Houches file has no events left for this shard")
    info = pythia.infoPython()
    events = ak.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    if reduce is not None:
        events = reduce(events)
    return ShardResult(
        index, events, info.sigmaGen() * MB_TO_PB, info.sigmaErr() * MB_TO_PB, produced, failed,
        f"{socket.gethostname()} pid {os.getpid()}",
    )


def _event_records(batch: Any, pythia: Any) -> Any:
    """Keep what analyses need: final-state particles, the hard process, event weight and scales."""
    import awkward as ak

    prt = batch.prt
    final = prt[prt.status > 0]
    hard = prt[(abs(prt.status) >= 21) & (abs(prt.status) <= 29)]
    mother1, mother2 = hard_mother_links(prt)
    daughter1, daughter2 = hard_daughters(mother1, mother2)
    weight = ak.fill_none(ak.firsts(batch.info.weights), 1.0)
    return ak.zip(
        {
            "particles": _momenta(final, {"pid": final.id, "charge": _charges(final.id, pythia)}),
            "partons": _momenta(hard, {"pid": hard.id, "status": hard.status, "mother1": mother1,
                                       "mother2": mother2, "daughter1": daughter1, "daughter2": daughter2}),
            "weight": weight,
            "pt_hat_gev": np.sqrt(np.asarray(batch.info.pT2Hat)),
            "m_hat_gev": batch.info.mHat,
        },
        depth_limit=1,
    )


def hard_mother_links(prt: Any) -> tuple[Any, Any]:
    """(mother1, mother2) of each hard-process record as indices among the event's hard records (int32, −1 none).

    mother1 follows Pythia's ``mother1`` through non-hard copies; mother2 is Pythia's ``mother2`` entry only where
    that entry is itself hard and differs from ``mother1`` (no walk: a second mother is only ever the other
    incoming parton of the hard process).
    """
    import awkward as ak

    target_status = abs(prt.status[prt.mother2])
    distinct = (prt.mother2 > 0) & (prt.mother2 != prt.mother1) & (target_status >= 21) & (target_status <= 29)
    mother1 = hard_mothers(prt.status, prt.mother1)
    mother2 = hard_mothers(prt.status, ak.where(distinct, prt.mother2, 0))
    return mother1, mother2


def _momenta(particles: Any, extra: dict[str, Any]) -> Any:
    import awkward as ak

    p = particles.p
    fields = {name: ak.values_astype(p[name], np.float32) for name in ("px", "py", "pz", "e")}
    return ak.zip(fields | extra)


def _charges(pids: Any, pythia: Any) -> Any:
    """Electric charge (units of e) from the PDG id, via Pythia's particle table."""
    import awkward as ak

    flat = np.asarray(ak.flatten(pids))
    unique = np.unique(flat)
    table = np.array([pythia.particleData.charge(int(pid)) for pid in unique], dtype=np.float32)
    charges = np.rint(table[np.searchsorted(unique, flat)]).astype(np.int8)
    return ak.unflatten(charges, ak.num(pids))


# --- running shards -----------------------------------------------------------------------

_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue  # noqa: PLW0603 — one queue per worker process, set once at start-up
    _progress_queue = progress_queue


def _shard_in_worker(settings: list[str], n_events: int, seed: int, index: int,
                     reduce: Callable[[Any], Any] | None, until_eof: bool = False) -> ShardResult:
    return generate_shard(settings, n_events, seed, index, _progress_queue.put, reduce, until_eof)


def generate(
    settings: list[str],
    plan: list[tuple[int, int]],
    workers: int,
    report: Callable[[int], None],
    reduce: Callable[[Any], Any] | None = None,
    per_shard: list[list[str]] | None = None,
    keep_dir: Path | None = None,
) -> Iterator[ShardResult]:
    """Run the shards of ``plan``; yields results in shard order (deterministic concatenation).

    ``reduce`` (picklable, e.g. a module-level function or a ``functools.partial`` of one) replaces each
    shard's events by ``reduce(events)``, computed in the worker. ``per_shard``: settings added to shard
    ``i`` only (a Les Houches file's skip count); with it, a shard stops at the end of the file.

    With a Dask cluster configured (:mod:`tools._cluster`) the shards run there instead of in a fork pool of
    ``workers`` processes; a shard that fails twice raises a RuntimeError naming it, after the finished shards
    were saved under ``keep_dir`` (when given), which the same call then reuses.
    """
    until_eof = per_shard is not None
    lines = per_shard or [[] for _ in plan]
    client = cluster_client()
    if client is not None:
        from physagent.tools.simulate._pythia_cluster import generate_on_cluster

        yield from generate_on_cluster(client, [[*settings, *extra] for extra in lines], plan, report, reduce,
                                       until_eof, keep_dir)
        return
    if workers <= 1 or len(plan) == 1:
        for index, (n, seed) in enumerate(plan):
            with _IN_PROCESS:
                shard = generate_shard([*settings, *lines[index]], n, seed, index, report, reduce, until_eof)
            yield shard
        return
    # forked workers (they touch no parent locks) that die with us, however we die
    progress_queue = multiprocessing.get_context("fork").Queue()
    with worker_pool(min(workers, len(plan)), _init_worker, (progress_queue,)) as pool:
        futures = [pool.submit(_shard_in_worker, [*settings, *lines[i]], n, s, i, reduce, until_eof)
                   for i, (n, s) in enumerate(plan)]
        for future in futures:
            yield _wait_reporting(future, progress_queue, report)


def _wait_reporting(future: Future, progress_queue: Any, report: Callable[[int], None]) -> ShardResult:
    while True:
        try:
            report(progress_queue.get(timeout=0.2))
        except queue.Empty:
            if future.done():
                return future.result()
