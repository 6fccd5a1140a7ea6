r"""Which executor runs the tools' parallel work: the local fork pool (default) or a Dask cluster.

``PHYSAGENT_CLUSTER`` chooses; when it is unset, ``cluster.yaml`` in ``PHYSAGENT_HOME`` does, if it exists:

=========================  ===================================================================
value                      the tools' shards run on
=========================  ===================================================================
unset (no file), ``none``  forked processes of the calling process (:mod:`tools._workers`)
``local`` / ``local:N``    a Dask ``LocalCluster`` of N worker processes (default: the worker count)
``tcp://host:8786``        an existing Dask scheduler (also ``tls://``)
a path to a YAML file      the cluster the file describes (``kind: local | scheduler | slurm | htcondor``)
=========================  ===================================================================

The file (keys per kind; sizes like ``16GB``, SLURM walltimes like ``02:00:00``)::

    kind: slurm                     # a dask-jobqueue SLURMCluster
    jobs: 4                         # batch jobs to start, each running `processes` Dask workers
    queue: allcpu                   # SLURM partition
    account: myproject              # optional
    cores: 8                        # per job
    processes: 8                    # Dask worker processes per job (default: cores, one thread each)
    memory: 32GB                    # per job
    walltime: "04:00:00"
    job_extra_directives: ["--constraint=EPYC"]
    job_script_prologue: ["source /data/me/physagent/.venv/bin/activate"]

HTCondor takes ``disk`` and a mapping for ``job_extra_directives`` (the site's runtime key lives there, e.g.
``+RequestRuntime: 7200`` at DESY NAF). Nothing here imports Dask: reading the configuration is cheap,
and a machine without a cluster configured never loads it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from physagent.tools._errors import ToolInputError
from physagent.tools._workers import worker_count
from physagent.tools._workspace import default_home

__all__ = ["CLUSTER_FILE", "CLUSTER_VARIABLE", "ClusterConfig", "cluster_config", "parse_cluster_file"]

CLUSTER_VARIABLE = "PHYSAGENT_CLUSTER"
CLUSTER_FILE = "cluster.yaml"  # looked for in PHYSAGENT_HOME when the variable is unset
ClusterKind = Literal["local", "scheduler", "slurm", "htcondor"]

_COMMON_BATCH_KEYS = {"jobs", "cores", "processes", "memory", "job_extra_directives", "job_script_prologue",
                      "log_directory", "local_directory", "python", "interface"}
_ALLOWED_KEYS: dict[str, set[str]] = {
    "local": {"n_workers", "memory", "local_directory"},
    "scheduler": {"address"},
    "slurm": _COMMON_BATCH_KEYS | {"queue", "account", "walltime"},
    "htcondor": _COMMON_BATCH_KEYS | {"disk"},
}
_REQUIRED_KEYS: dict[str, set[str]] = {
    "local": set(), "scheduler": {"address"}, "slurm": {"cores", "memory"}, "htcondor": {"cores", "memory", "disk"},
}
_SCHEDULER_PREFIXES = ("tcp://", "tls://", "inproc://", "ucx://")
_WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")  # SLURM's forms: MM, HH:MM:SS, D-HH, D-HH:MM:SS, ...
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([kKMGT]i?B?|B)?$")
_DOCS = "See 'Scale-out on Dask' in the README."


@dataclass(frozen=True)
class ClusterConfig:
    """A Dask cluster the tools run on, as configured; ``source`` says where the configuration came from."""

    kind: ClusterKind
    source: str
    n_workers: int = 0
    address: str = ""
    jobs: int = 1
    cores: int = 0
    processes: int = 0  # batch clusters: Dask worker processes per job; 0 means one per core
    memory: str = ""
    walltime: str = ""
    disk: str = ""
    queue: str = ""
    account: str = ""
    job_extra_directives: Any = field(default_factory=list)  # SLURM: list of strings; HTCondor: mapping
    job_script_prologue: list[str] = field(default_factory=list)
    log_directory: str = ""
    local_directory: str = ""
    python: str = ""
    interface: str = ""

    def describe(self) -> str:
        """One line for people: what runs where."""
        if self.kind == "local":
            return f"Dask LocalCluster of {self.n_workers} worker processes on this machine"
        if self.kind == "scheduler":
            return f"the Dask scheduler at {self.address}"
        where = f" on queue {self.queue}" if self.queue else ""
        limits = ", ".join(x for x in (self.memory, self.walltime and f"walltime {self.walltime}",
                                        self.disk and f"disk {self.disk}") if x)
        return (f"{self.kind.upper() if self.kind == 'slurm' else 'HTCondor'} jobs{where}: {self.jobs} × "
                f"({self.cores} cores, {limits}), {self.processes or self.cores} Dask worker process(es) per job")


def cluster_config() -> ClusterConfig | None:
    """The configured Dask cluster, or None for the local fork pool.

    Returns:
        The configuration from ``PHYSAGENT_CLUSTER``, else from ``$PHYSAGENT_HOME/cluster.yaml``, else None.

    Raises:
        ToolInputError: the variable or the file holds something that is not a cluster configuration;
            the message names the value and what is allowed.
    """
    raw = os.environ.get(CLUSTER_VARIABLE, "").strip()
    if not raw:
        home_file = default_home() / CLUSTER_FILE
        return parse_cluster_file(home_file) if home_file.is_file() else None
    if raw.lower() in {"none", "off", "fork"}:
        return None
    if raw.lower() == "local" or raw.lower().startswith("local:"):
        return _local_from_variable(raw)
    if raw.startswith(_SCHEDULER_PREFIXES):
        return ClusterConfig(kind="scheduler", source=f"{CLUSTER_VARIABLE}={raw}", address=raw)
    if raw.endswith((".yaml", ".yml")) or os.sep in raw:
        return parse_cluster_file(Path(raw).expanduser())
    raise ToolInputError(
        f"{CLUSTER_VARIABLE}={raw!r} is not a cluster. Use 'none' (the local fork pool), 'local' or 'local:N' "
        "(a Dask LocalCluster of N workers), a scheduler address such as 'tcp://host:8786', or the path of a "
        f"cluster YAML file (kind: local, scheduler, slurm or htcondor). {_DOCS}")


def _local_from_variable(raw: str) -> ClusterConfig:
    _, _, count = raw.partition(":")
    n_workers = _positive_int(f"{CLUSTER_VARIABLE}={raw!r}: the worker count", count) if count else worker_count()
    return ClusterConfig(kind="local", source=f"{CLUSTER_VARIABLE}={raw}", n_workers=n_workers)


def parse_cluster_file(path: Path) -> ClusterConfig:
    """Read a cluster YAML file (format in the module docstring).

    Raises:
        ToolInputError: the file is missing, is not YAML, or has an unknown kind, an unknown or missing key,
            or a bad value; the message names the file, the key and what is allowed.
    """
    import yaml

    if not path.is_file():
        raise ToolInputError(f"cluster file {path} does not exist. Write one (kind: local, scheduler, slurm or "
                             f"htcondor) or set {CLUSTER_VARIABLE} to another value. {_DOCS}")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ToolInputError(f"cluster file {path} is not valid YAML ({' '.join(str(exc).split())}). "
                             "Fix the syntax.") from exc
    if not isinstance(document, dict):
        raise ToolInputError(f"cluster file {path} must hold a mapping of keys (kind: slurm, cores: 8, ...), "
                             f"not {type(document).__name__}. {_DOCS}")
    return _config_from_mapping(document, str(path))


def _config_from_mapping(document: dict[str, Any], source: str) -> ClusterConfig:
    kind = document.get("kind")
    if kind not in _ALLOWED_KEYS:
        raise ToolInputError(f"{source}: kind={kind!r} is not a cluster kind. Use one of: "
                             f"{', '.join(_ALLOWED_KEYS)}. {_DOCS}")
    keys = set(document) - {"kind"}
    unknown, missing = keys - _ALLOWED_KEYS[kind], _REQUIRED_KEYS[kind] - keys
    if unknown:
        hint = _HTCONDOR_WALLTIME if kind == "htcondor" and "walltime" in unknown else _DOCS
        raise ToolInputError(f"{source}: {', '.join(sorted(unknown))} is not a key of a {kind} cluster. Allowed "
                             f"keys: {', '.join(sorted(_ALLOWED_KEYS[kind]))}. {hint}")
    if missing:
        raise ToolInputError(f"{source}: a {kind} cluster needs {', '.join(sorted(missing))}. Add "
                             f"{'them' if len(missing) > 1 else 'it'} to the file. {_DOCS}")
    values = {key: _checked(source, kind, key, value) for key, value in document.items() if key != "kind"}
    if kind == "local":
        values.setdefault("n_workers", worker_count())
    return ClusterConfig(kind=kind, source=source, **values)


_HTCONDOR_WALLTIME = ("HTCondor has no walltime key: put the site's runtime limit in job_extra_directives, "
                      "e.g. {'+RequestRuntime': 7200} (DESY NAF) or {'+MaxRuntime': 7200} (CERN).")


def _checked(source: str, kind: str, key: str, value: Any) -> Any:
    """The value of ``key``, checked; raises a ToolInputError naming it otherwise."""
    where = f"{source}: {key}"
    if key in {"n_workers", "jobs", "cores", "processes"}:
        return _positive_int(where, value)
    if key in {"memory", "disk"}:
        if not _SIZE.match(str(value).strip()):
            raise ToolInputError(f"{where}={value!r} is not a size. Write it like '16GB' or '4000MB'.")
        return str(value).strip()
    if key == "walltime":
        if not _WALLTIME.match(str(value).strip()):
            raise ToolInputError(f"{where}={value!r} is not a SLURM walltime. Write it as a quoted string like "
                                 "'02:00:00' (hours:minutes:seconds) or '1-00:00:00' (days-hours:minutes:seconds).")
        return str(value).strip()
    if key == "address" and not str(value).startswith(_SCHEDULER_PREFIXES):
        raise ToolInputError(f"{where}={value!r} is not a Dask scheduler address. Write it like "
                             "'tcp://login1.example.org:8786'.")
    if key == "job_extra_directives":
        return _directives(where, kind, value)
    if key == "job_script_prologue":
        return _strings(where, value)
    return str(value)


def _directives(where: str, kind: str, value: Any) -> Any:
    if kind == "htcondor":
        if not isinstance(value, dict):
            raise ToolInputError(f"{where} must be a mapping of submit-file keys for HTCondor, e.g. "
                                 "{'+RequestRuntime': 7200, 'requirements': 'OpSysAndVer == \"CentOS7\"'}.")
        return {str(k): str(v) for k, v in value.items()}
    return _strings(where, value)


def _strings(where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str | int | float) for item in value):
        raise ToolInputError(f"{where}={value!r} must be a list of strings, e.g. ['--constraint=EPYC'].")
    return [str(item) for item in value]


def _positive_int(where: str, value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1 or isinstance(value, bool | float):
        raise ToolInputError(f"{where} must be a positive whole number, not {value!r}. Use 1 or more.")
    return number
