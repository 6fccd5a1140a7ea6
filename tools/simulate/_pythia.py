r"""Pythia8 event generation, the pure core behind ``generate_events``.

Events come from ``Pythia.nextBatch`` (vectorised, awkward output); final-state particles are the
records with ``status > 0`` and the hard process the ones with ``21 <= |status| <= 29`` (Pythia's
status codes, including resonance decays). Momenta in GeV, cross-sections in pb (Pythia's
``sigmaGen`` is in mb; 1 mb = 1e9 pb).

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
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from physagent.tools._stdio import capture_fd_stdout
from physagent.tools._workers import worker_pool

__all__ = ["ShardResult", "generate", "invalid_settings", "shard_plan", "try_init"]

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
    reduce: Callable[[Any], Any] | None = None,
) -> ShardResult:
    """Generate ``n_events`` accepted events with one Pythia instance seeded with ``seed``
    (``events`` is ``reduce(events)`` when ``reduce`` is given)."""
    import awkward as ak

    pythia = _new_pythia()
    with capture_fd_stdout():
        for line in [*settings, "Random:setSeed = on", f"Random:seed = {seed}"]:
            pythia.readString(line)
        if not pythia.init():
            raise RuntimeError("Pythia failed to initialise with the given settings")
    chunks, failed, empty_in_a_row = [], 0, 0
    produced = 0
    while produced < n_events:
        want = min(_BATCH, n_events - produced)
        with capture_fd_stdout():
            batch = pythia.nextBatch(want, errorMode="skip")
        got = len(batch)
        failed += want - got
        empty_in_a_row = 0 if got else empty_in_a_row + 1
        if empty_in_a_row >= 5:
            raise RuntimeError(f"Pythia failed {5 * want} events in a row; check the settings")
        if got:
            chunks.append(_event_records(batch, pythia))
            produced += got
            report(got)
    info = pythia.infoPython()
    events = ak.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    if reduce is not None:
        events = reduce(events)
    return ShardResult(
        index, events, info.sigmaGen() * MB_TO_PB, info.sigmaErr() * MB_TO_PB, produced, failed
    )


def _event_records(batch: Any, pythia: Any) -> Any:
    """Keep what analyses need: final-state particles, the hard process, event weight and scales."""
    import awkward as ak

    prt = batch.prt
    final = prt[prt.status > 0]
    hard = prt[(abs(prt.status) >= 21) & (abs(prt.status) <= 29)]
    weight = ak.fill_none(ak.firsts(batch.info.weights), 1.0)
    return ak.zip(
        {
            "particles": _momenta(final, {"pid": final.id, "charge": _charges(final.id, pythia)}),
            "partons": _momenta(hard, {"pid": hard.id, "status": hard.status}),
            "weight": weight,
            "pt_hat_gev": np.sqrt(np.asarray(batch.info.pT2Hat)),
            "m_hat_gev": batch.info.mHat,
        },
        depth_limit=1,
    )


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
                     reduce: Callable[[Any], Any] | None) -> ShardResult:
    return generate_shard(settings, n_events, seed, index, _progress_queue.put, reduce)


def generate(
    settings: list[str],
    plan: list[tuple[int, int]],
    workers: int,
    report: Callable[[int], None],
    reduce: Callable[[Any], Any] | None = None,
) -> Iterator[ShardResult]:
    """Run the shards of ``plan``; yields results in shard order (deterministic concatenation).

    ``reduce`` (picklable, e.g. a module-level function or a ``functools.partial`` of one) replaces each
    shard's events by ``reduce(events)``, computed in the worker.
    """
    if workers <= 1 or len(plan) == 1:
        for index, (n, seed) in enumerate(plan):
            with _IN_PROCESS:
                shard = generate_shard(settings, n, seed, index, report, reduce)
            yield shard
        return
    # forked workers (they touch no parent locks) that die with us, however we die
    progress_queue = multiprocessing.get_context("fork").Queue()
    with worker_pool(min(workers, len(plan)), _init_worker, (progress_queue,)) as pool:
        futures = [pool.submit(_shard_in_worker, settings, n, s, i, reduce) for i, (n, s) in enumerate(plan)]
        for future in futures:
            yield _wait_reporting(future, progress_queue, report)


def _wait_reporting(future: Future, progress_queue: Any, report: Callable[[int], None]) -> ShardResult:
    while True:
        try:
            report(progress_queue.get(timeout=0.2))
        except queue.Empty:
            if future.done():
                return future.result()
