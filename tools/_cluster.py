r"""The Dask client the tools' shards run on, when a cluster is configured (:mod:`tools._cluster_config`).

``cluster_client``: None without a cluster (the fork pool runs the work, as before); else one
``distributed.Client`` per process and configuration, made on first use and closed at exit:

- ``local``: a ``LocalCluster`` of worker processes with one thread each (Pythia is single-threaded);
- ``scheduler``: a client of the scheduler at the address;
- ``slurm``/``htcondor``: a dask-jobqueue cluster whose scheduler runs in this process, scaled to ``jobs``
  batch jobs. Its workers must see the same Python environment (``job_script_prologue`` activates it).

Where this process starts the scheduler (every kind but ``scheduler``) a task whose worker dies is run once
more and then fails (``allowed-failures = 1``): a dead worker costs one retry, not three. Runs with many more
shards than workers keep the waiting shards on the scheduler, sending each worker only what it can run at once
(``worker-saturation = 1``; shards are long), so a death charges fewer shards that were merely waiting there
(Dask counts a death against every task the worker held).

``job_script`` renders a batch job script without a batch system; ``execution_status`` says what the tools
run on, and ``executor_record`` the same as provenance for an artifact's record.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from typing import Any

from physagent.tools._cluster_config import ClusterConfig, cluster_config
from physagent.tools._errors import ToolDependencyError, ToolInputError, ToolRuntimeError, one_line
from physagent.tools._workers import worker_count

__all__ = ["ExecutionStatus", "close_cluster", "cluster_client", "execution_status", "executor_record", "job_script"]

ALLOWED_FAILURES = 1  # a task whose worker dies is run once more; a second death fails it
_CONNECT_TIMEOUT_S = 20
_lock = threading.Lock()
_active: tuple[ClusterConfig, Any, Any] | None = None  # (config, client, cluster we started or None)


def cluster_client() -> Any | None:
    """The ``distributed.Client`` of the configured cluster, started on first use; None for the fork pool.

    Raises:
        ToolInputError: the cluster configuration is invalid.
        ToolRuntimeError: the scheduler cannot be reached or the cluster cannot start.
        ToolDependencyError: dask.distributed (or dask-jobqueue for batch clusters) is not installed.
    """
    global _active  # noqa: PLW0603 — one client per process, shared by every tool call
    config = cluster_config()
    if config is None:
        return None
    with _lock:
        if _active is not None and _active[0] == config and _active[1].status == "running":
            return _active[1]
        _close_locked()
        client, cluster = _connect(config)
        _active = (config, client, cluster)
        return client


def close_cluster() -> None:
    """Close the client (and the cluster this process started); the next call starts them again."""
    with _lock:
        _close_locked()


def _close_locked() -> None:
    global _active  # noqa: PLW0603
    if _active is None:
        return
    _, client, cluster = _active
    _active = None
    client.close()
    if cluster is not None:
        cluster.close()


atexit.register(close_cluster)


def _connect(config: ClusterConfig) -> tuple[Any, Any]:
    dask, distributed = _import_dask(config)
    # saturation 1: where Dask queues tasks (many shards), a worker holds only what it runs, so its death is
    # charged to fewer waiting shards
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                          "distributed.scheduler.worker-saturation": 1.0}):
        try:
            if config.kind == "scheduler":
                return distributed.Client(config.address, timeout=f"{_CONNECT_TIMEOUT_S}s"), None
            cluster = _local_cluster(config) if config.kind == "local" else _batch_cluster(config)
        except (OSError, TimeoutError) as exc:
            raise ToolRuntimeError(
                f"{config.source}: could not reach or start {config.describe()} ({one_line(exc)}). Check that the "
                "scheduler runs and the address is right, or unset PHYSAGENT_CLUSTER to use the local fork "
                "pool.") from exc
        except RuntimeError as exc:  # a spawned worker re-ran an unguarded script's top level and stopped
            raise ToolRuntimeError(
                f"{config.source}: the Dask LocalCluster's worker processes failed to start ({one_line(exc)}). "
                "They start Python afresh and import your script: put the script's code under "
                "`if __name__ == \"__main__\":`, or unset PHYSAGENT_CLUSTER to use the local fork pool.") from exc
        if config.kind != "local":
            cluster.scale(jobs=config.jobs)
        return distributed.Client(cluster), cluster


def _local_cluster(config: ClusterConfig) -> Any:
    from distributed import LocalCluster

    options: dict[str, Any] = {"local_directory": config.local_directory} if config.local_directory else {}
    if config.memory:
        options["memory_limit"] = config.memory
    # no dashboard (it needs bokeh); the scheduler's small HTTP server on a free port, not a fixed 8787
    return LocalCluster(n_workers=config.n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.ERROR, **options)


def _batch_cluster(config: ClusterConfig) -> Any:
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ToolDependencyError(f"{config.source}: a {config.kind} cluster needs dask-jobqueue. Install it "
                                  "with `pip install 'dask-jobqueue>=0.9,<0.10'`.") from exc
    kind = dask_jobqueue.SLURMCluster if config.kind == "slurm" else dask_jobqueue.HTCondorCluster
    return kind(**_jobqueue_options(config))


def _jobqueue_options(config: ClusterConfig) -> dict[str, Any]:
    """dask-jobqueue keyword arguments for a batch cluster; empty settings fall back to its own defaults."""
    options = {
        # one thread per Dask worker unless the file says otherwise: Pythia instances must not share a process
        "cores": config.cores, "processes": config.processes or config.cores, "memory": config.memory,
        "job_extra_directives": config.job_extra_directives, "job_script_prologue": config.job_script_prologue,
        "log_directory": config.log_directory, "local_directory": config.local_directory,
        "python": config.python, "interface": config.interface,
    }
    if config.kind == "slurm":
        options |= {"queue": config.queue, "account": config.account, "walltime": config.walltime}
    else:
        options["disk"] = config.disk
    return {key: value for key, value in options.items() if value not in ("", None, [], {})}


def job_script(config: ClusterConfig) -> str:
    """The batch job script a SLURM or HTCondor cluster would submit; no batch system is needed.

    Raises:
        ToolInputError: ``config`` is not a batch cluster (kind ``slurm`` or ``htcondor``).
    """
    if config.kind not in {"slurm", "htcondor"}:
        raise ToolInputError(f"{config.source}: a {config.kind} cluster submits no batch jobs, so it has no "
                             "job script. Configure kind: slurm or kind: htcondor.")
    _import_dask(config)
    cluster = _batch_cluster(config)
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


def _import_dask(config: ClusterConfig) -> tuple[Any, Any]:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise ToolDependencyError(f"{config.source} needs dask.distributed, which is not installed. Install it "
                                  "with `pip install 'distributed>=2026.8,<2027'`, or unset PHYSAGENT_CLUSTER "
                                  "to use the local fork pool.") from exc
    return dask, distributed


@dataclass(frozen=True)
class ExecutionStatus:
    """What the tools' parallel work runs on."""

    kind: str  # "fork pool", "local", "scheduler", "slurm" or "htcondor"
    source: str  # where the choice came from
    description: str
    workers: int | None  # fork-pool size, or Dask workers connected now (None: not started/unknown)
    address: str | None = None  # the Dask scheduler's address once connected

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "description": self.description,
                "workers": self.workers, "address": self.address}


def execution_status(connect: bool = True) -> ExecutionStatus:
    """Describe the executor. Connects to a configured scheduler (``connect``); never starts a local cluster or
    submits batch jobs just to look, but reports the live client when this process already has one."""
    config = cluster_config()
    if config is None:
        count = worker_count()
        return ExecutionStatus("fork pool", "default (PHYSAGENT_CLUSTER unset, no cluster.yaml)",
                               f"forked processes of the calling process, {count} at a time", count)
    live = _active[1] if _active is not None and _active[0] == config else None
    if live is None and connect and config.kind == "scheduler":
        live = cluster_client()
    if live is None:
        note = {"local": " (started on first use)", "scheduler": ""}.get(config.kind, " (jobs submitted on first use)")
        return ExecutionStatus(config.kind, config.source, config.describe() + note, None)
    info = live.scheduler_info(n_workers=-1)
    return ExecutionStatus(config.kind, config.source, config.describe(), len(info.get("workers", {})),
                           str(info.get("address") or live.scheduler.address))


def executor_record() -> dict[str, Any]:
    """The executor as provenance: the fork pool and its size, or the Dask cluster's kind and scheduler."""
    config = cluster_config()
    if config is None:
        return {"executor": "fork pool", "workers": worker_count()}
    live = _active[1] if _active is not None and _active[0] == config else None
    address = live.scheduler.address if live is not None else config.address or None
    return {"executor": "dask", "cluster": config.kind, "configured_by": config.source, "scheduler": address}
