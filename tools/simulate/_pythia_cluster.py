r"""Pythia shards as Dask tasks: the cluster branch of :func:`tools.simulate._pythia.generate`.

Each shard is one task (:func:`tools._cluster_run.run_on_cluster`) that builds its own Pythia on the worker
(Pythia objects do not pickle) and sends its events back to the caller as data, which writes the artifact;
so a shard's events, and the sample's hash, are those of the fork pool for the same ``(seed, shards)``.

A failed run keeps its finished shards in ``<workspace>/kept-shards/<run key>/`` (:class:`KeptShards`): each
as awkward buffers in an ``.npz`` (no pickle: code the sandbox runs may write to the workspace) beside a
JSON record, the record written last. The run key hashes the settings and the shard plan, so only the
same call finds them; it uses them and removes the folder once the run completes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._cluster_run import ClusterTask, ClusterTaskError, TaskOutcome, run_on_cluster
from physagent.tools.simulate._pythia import _IN_PROCESS, ShardResult, generate_shard

__all__ = ["KeptShards", "generate_on_cluster"]

KEPT_FOLDER = "kept-shards"
_log = logging.getLogger(__name__)


def generate_on_cluster(
    client: Any, shard_settings: list[list[str]], plan: list[tuple[int, int]], report: Callable[[int], None],
    reduce: Callable[[Any], Any] | None, until_eof: bool, keep_dir: Path | None,
) -> Iterator[ShardResult]:
    """Run shard ``i`` of ``plan`` with ``shard_settings[i]`` on the cluster; yield results in shard order.

    Raises:
        RuntimeError: a shard failed twice; the message names its index and Pythia seed.
    """
    n_shards = len(plan)
    tasks = [ClusterTask(_shard_task, (settings, n, seed, index), _label(index, n_shards, n, seed),
                         {"reduce": reduce, "until_eof": until_eof})
             for index, (settings, (n, seed)) in enumerate(zip(shard_settings, plan, strict=True))]
    # reduced shards (arbitrary Python values) are not kept: only awkward events have a pickle-free format
    keeper = KeptShards(keep_dir, _run_key(shard_settings, plan, until_eof)) if keep_dir and reduce is None else None
    try:
        for outcome in run_on_cluster(client, tasks, lambda amount: report(int(amount)), keeper):
            yield replace(outcome.value, worker=outcome.worker, attempts=outcome.attempts, kept=outcome.kept)
    except ClusterTaskError as exc:
        raise RuntimeError(str(exc)) from exc


def _label(index: int, n_shards: int, n_events: int, seed: int) -> str:
    return f"shard {index} of {n_shards} (Pythia seed {seed}, {n_events} events)"


def _shard_task(settings: list[str], n_events: int, seed: int, index: int, *, report: Callable[[int], None],
                reduce: Callable[[Any], Any] | None, until_eof: bool) -> ShardResult:
    """Runs on a Dask worker. Pythia instances of one process take turns (see ``_pythia``), in case a worker
    was configured with several threads."""
    with _IN_PROCESS:
        return generate_shard(settings, n_events, seed, index, report, reduce, until_eof)


def _run_key(shard_settings: list[list[str]], plan: list[tuple[int, int]], until_eof: bool) -> str:
    import pythia8mc

    text = json.dumps([shard_settings, plan, until_eof, getattr(pythia8mc, "__version__", "")])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class KeptShards:
    """The finished shards of a failed run, for the same call to reuse (format in the module docstring)."""

    def __init__(self, keep_dir: Path, run_key: str) -> None:
        self.directory = keep_dir / KEPT_FOLDER / run_key
        self.where = str(self.directory)

    def save(self, outcome: TaskOutcome) -> None:
        """Write shard ``outcome.index`` atomically: buffers first, then the record that commits them."""
        import awkward as ak

        shard: ShardResult = outcome.value
        self.directory.mkdir(parents=True, exist_ok=True)
        form, length, buffers = ak.to_buffers(shard.events)
        stem = self.directory / f"shard-{outcome.index}"
        _atomic(stem.with_suffix(".npz"), lambda path: np.savez(path, **buffers))
        record = {"form": form.to_json(), "length": length, "sigma_pb": shard.sigma_pb,
                  "sigma_err_pb": shard.sigma_err_pb, "n_accepted": shard.n_accepted, "n_failed": shard.n_failed,
                  "worker": outcome.worker, "attempts": outcome.attempts, "reported": outcome.reported}
        _atomic(stem.with_suffix(".json"), lambda path: path.write_text(json.dumps(record)))

    def load(self, index: int) -> TaskOutcome | None:
        """Shard ``index`` as kept by a failed run; None when there is none, or it cannot be read (then the
        shard is computed again, with a warning)."""
        stem = self.directory / f"shard-{index}"
        if not stem.with_suffix(".json").is_file():
            return None
        try:
            return _read_kept(stem, index)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            _log.warning("kept shard %s cannot be read (%s); computing the shard again", stem, exc)
            return None

    def discard(self) -> None:
        """The run completed: the kept shards are part of its artifact now."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _read_kept(stem: Path, index: int) -> TaskOutcome:
    import awkward as ak

    record = json.loads(stem.with_suffix(".json").read_text())
    with np.load(stem.with_suffix(".npz"), allow_pickle=False) as buffers:
        events = ak.from_buffers(ak.forms.from_json(record["form"]), record["length"],
                                 {name: buffers[name] for name in buffers.files})
    if len(events) != record["n_accepted"]:
        raise ValueError(f"{len(events)} events, the record says {record['n_accepted']}")
    shard = ShardResult(index, events, record["sigma_pb"], record["sigma_err_pb"], record["n_accepted"],
                        record["n_failed"])
    return TaskOutcome(index, shard, record["worker"], record["attempts"], record["reported"], kept=True)


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    write(temporary)
    temporary.replace(path)
