r"""Event generation for ``make_jet_dataset``: Pythia8 in seeded rounds until every class has its jets.

Each round generates the missing jets over the measured yield (15% to spare) in a fixed number of
shards (:data:`_MIN_SHARDS` at least, so the events depend on the seed only, not on the core count),
with p̂T in [0.9 pT_min, 1.25 pT_max]; the jets are selected and truth-matched by
:func:`tools.tag._matching.select_jets`. At most :data:`_MAX_ROUNDS` rounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolRuntimeError
from physagent.tools._workers import worker_count
from physagent.tools.tag._matching import Cuts, Pool, Source, select_jets

__all__ = ["generate_jets"]

_PT_HAT_WINDOW = (0.9, 1.25)  # p̂T window as fractions of the jet pT window
_FIRST_YIELD_GUESS = 0.3  # useful jets per event assumed before the first round has measured it
_MAX_ROUNDS = 8
_MIN_SHARDS = 2  # fixed (not the core count), so the events depend on the seed only


def generate_jets(
    ctx: ToolContext, source: Source, cuts: Cuts, n_per_class: int, balance: str, generation: dict[str, Any],
    index: int,
) -> Pool:
    """Generate events of the source's process in seeded rounds until it has ``n_per_class`` jets per class."""
    from physagent.tools.simulate import _pythia
    from physagent.tools.simulate.events import EVENTS_PER_SHARD, process_settings

    assert source.process is not None  # two_samples never generates (checked in _check_request)
    pt_hat = (cuts.pt_min_gev * _PT_HAT_WINDOW[0], min(cuts.pt_max_gev * _PT_HAT_WINDOW[1],
                                                       0.45 * generation["sqrt_s_tev"] * 1000.0))
    settings = process_settings(
        source.process, generation["sqrt_s_tev"], pt_hat[0], pt_hat[1], None, None, source.decay,
        (3500.0, 500.0, 100.0), (generation["mpi"], True, True, True), [])
    pool = Pool(record={"process": source.process, "decay": source.decay, "pythia_settings": settings,
                        "pt_hat_window_gev": list(pt_hat), "rounds": []})
    workers = worker_count()
    seeds = np.random.SeedSequence([generation["seed"], index]).generate_state(_MAX_ROUNDS)
    total = _missing(pool, source, n_per_class, balance)
    with ctx.progress(f"{source.name} jets from Pythia8 {source.process}", total=total, unit="jets") as bar, \
            ctx.progress(f"Pythia8 {source.process} events", total=None, unit="events") as events_bar:
        for round_seed in seeds:
            missing = _missing(pool, source, n_per_class, balance)
            if missing == 0:
                break
            n_events = _events_for(missing, pool)
            plan = _pythia.shard_plan(n_events, max(_MIN_SHARDS, math.ceil(n_events / EVENTS_PER_SHARD)),
                                      int(round_seed))
            pool.record["rounds"].append({"n_events": n_events, "seed": int(round_seed),
                                          "shards": [{"n_events": n, "pythia_seed": s} for n, s in plan]})
            for shard in _run(settings, plan, workers, events_bar.advance, source, ctx.workspace.root):
                pool.execution.append({"round": len(pool.record["rounds"]) - 1, "index": shard.index,
                                       "pythia_seed": plan[shard.index][1], "worker": shard.worker,
                                       "attempts": shard.attempts, "kept": shard.kept})
                jets, labels, stats = select_jets(shard.events.particles, shard.events.partons, cuts, source)
                pool.add(jets, labels, stats, shard.n_accepted)
                still_missing = _missing(pool, source, n_per_class, balance)
                bar.advance(missing - still_missing)
                missing = still_missing
            if not any(pool.count(label) for label in _wanted_labels(source)):
                raise ToolRuntimeError(
                    f"make_jet_dataset: {n_events:,} {source.process} events gave no {source.name} jet with "
                    f"{cuts.pt_min_gev:g} < pT < {cuts.pt_max_gev:g} GeV and |eta| < {cuts.eta_max:g}. "
                    "Widen the pT window or check the process.")
    return pool


def _events_for(missing: int, pool: Pool) -> int:
    """Events for the next round: the missing jets over the measured yield, with 15% to spare."""
    collected = sum(int((labels >= 0).sum()) for labels in pool.labels)
    per_event = collected / pool.events if pool.events and collected else _FIRST_YIELD_GUESS
    return math.ceil(missing / max(per_event, 0.01) * 1.15) + 100


def _run(settings: list[str], plan: list[tuple[int, int]], workers: int, report: Callable[[float], None],
         source: Source, keep_dir: Path) -> Any:
    from physagent.tools.simulate import _pythia

    try:
        yield from _pythia.generate(settings, plan, workers, report, keep_dir=keep_dir)
    except RuntimeError as exc:
        raise ToolRuntimeError(f"make_jet_dataset: Pythia failed for process {source.process!r}: {exc}") from exc


def _wanted_labels(source: Source) -> tuple[int, ...]:
    return (1, 0) if source.match == "quark_gluon" else (source.label,)


def _missing(pool: Pool, source: Source, n_per_class: int, balance: str) -> int:
    labels = _wanted_labels(source)
    if balance == "weights" and len(labels) == 2:
        return max(0, len(labels) * n_per_class - sum(pool.count(label) for label in labels))
    return sum(max(0, n_per_class - pool.count(label)) for label in labels)
