"""Cluster configuration (PHYSAGENT_CLUSTER, cluster.yaml): the accepted forms, errors that say what is wrong,
SLURM and HTCondor job scripts with the requested resources, and `physagent cluster status`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from physagent.app.cli import app
from physagent.tools import ToolInputError, cluster_config, execution_status, job_script

SLURM = """\
kind: slurm
jobs: 4
queue: allcpu
account: cms
cores: 8
memory: 32GB
walltime: "04:00:00"
job_extra_directives: ["--constraint=EPYC"]
job_script_prologue: ["source /data/dust/user/me/physagent/.venv/bin/activate"]
"""
HTCONDOR = """\
kind: htcondor
jobs: 2
cores: 4
memory: 8GB
disk: 10GB
job_extra_directives: {"+RequestRuntime": 7200, "requirements": "OpSysAndVer == \\"AlmaLinux9\\""}
"""


def _file(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.usefixtures("workspace")
@pytest.mark.parametrize("value", [None, "", "none", "NONE", "off"])
def test_without_a_cluster_the_fork_pool_runs_the_work(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Unset, empty or 'none' (and no cluster.yaml in the workspace) ⇒ no cluster: the fork pool, as before."""
    if value is None:
        monkeypatch.delenv("PHYSAGENT_CLUSTER", raising=False)
    else:
        monkeypatch.setenv("PHYSAGENT_CLUSTER", value)
    monkeypatch.setenv("PHYSAGENT_WORKERS", "3")
    assert cluster_config() is None
    status = execution_status()
    assert (status.kind, status.workers) == ("fork pool", 3)


@pytest.mark.parametrize(("value", "kind", "workers", "address"), [
    ("local", "local", 2, ""), ("local:3", "local", 3, ""), ("tcp://login1.example.org:8786", "scheduler", 0,
                                                              "tcp://login1.example.org:8786"),
])
def test_the_variable_names_a_local_cluster_or_a_scheduler(monkeypatch: pytest.MonkeyPatch, value: str, kind: str,
                                                           workers: int, address: str) -> None:
    """'local' takes the worker count (PHYSAGENT_WORKERS), 'local:N' sets it; a tcp:// address is a scheduler."""
    monkeypatch.setenv("PHYSAGENT_WORKERS", "2")
    monkeypatch.setenv("PHYSAGENT_CLUSTER", value)
    config = cluster_config()
    assert config is not None
    assert (config.kind, config.n_workers, config.address) == (kind, workers, address)


def test_a_cluster_yaml_in_the_workspace_is_used_when_the_variable_is_unset(
        workspace: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """$PHYSAGENT_HOME/cluster.yaml configures the cluster; PHYSAGENT_CLUSTER=none still overrides it."""
    monkeypatch.delenv("PHYSAGENT_CLUSTER", raising=False)
    home = Path(str(workspace.root))  # type: ignore[attr-defined]
    home.mkdir(parents=True)
    _file(home, SLURM)
    config = cluster_config()
    assert config is not None and config.kind == "slurm" and config.source == str(home / "cluster.yaml")
    assert (config.jobs, config.queue, config.cores, config.memory, config.walltime) == (4, "allcpu", 8, "32GB",
                                                                                         "04:00:00")
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "none")
    assert cluster_config() is None


@pytest.mark.parametrize(("value", "message"), [
    ("bogus", "PHYSAGENT_CLUSTER='bogus' is not a cluster. Use 'none' (the local fork pool), 'local' or 'local:N'"),
    ("local:0", "PHYSAGENT_CLUSTER='local:0': the worker count must be a positive whole number, not '0'"),
    ("local:two", "the worker count must be a positive whole number, not 'two'. Use 1 or more."),
    ("/no/such/cluster.yaml", "cluster file /no/such/cluster.yaml does not exist. Write one (kind: local, scheduler"),
])
def test_a_bad_variable_says_what_is_wrong_and_what_is_allowed(monkeypatch: pytest.MonkeyPatch, value: str,
                                                               message: str) -> None:
    """Each bad value fails with a message that quotes it and says what to write instead."""
    monkeypatch.setenv("PHYSAGENT_CLUSTER", value)
    with pytest.raises(ToolInputError) as caught:
        cluster_config()
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("kind: kubernetes\n", "kind='kubernetes' is not a cluster kind. Use one of: local, scheduler, slurm, htcondor"),
    ("kind: slurm\ncores: 8\n", "a slurm cluster needs memory. Add it to the file."),
    ("kind: slurm\ncores: 8\nmemory: 8GB\nqueues: short\n",
     "queues is not a key of a slurm cluster. Allowed keys: account, cores,"),
    ("kind: htcondor\ncores: 4\nmemory: 8GB\ndisk: 1GB\nwalltime: '01:00:00'\n",
     "HTCondor has no walltime key: put the site's runtime limit in job_extra_directives"),
    ("kind: slurm\ncores: 0\nmemory: 8GB\n", "cores must be a positive whole number, not 0. Use 1 or more."),
    ("kind: slurm\ncores: 8\nmemory: lots\n", "memory='lots' is not a size. Write it like '16GB' or '4000MB'."),
    ("kind: slurm\ncores: 8\nmemory: 8GB\nwalltime: 2 hours\n", "walltime='2 hours' is not a SLURM walltime."),
    ("kind: scheduler\naddress: login1:8786\n", "address='login1:8786' is not a Dask scheduler address."),
    ("kind: htcondor\ncores: 4\nmemory: 8GB\ndisk: 1GB\njob_extra_directives: ['+RequestRuntime = 60']\n",
     "job_extra_directives must be a mapping of submit-file keys for HTCondor"),
    ("- kind: slurm\n", "must hold a mapping of keys (kind: slurm, cores: 8, ...), not list."),
    ("kind: [slurm\n", "is not valid YAML"),
])
def test_a_bad_cluster_file_names_the_key_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                                      message: str) -> None:
    """Unknown kinds and keys, missing keys and bad values fail with the file, the key and what is allowed."""
    path = _file(tmp_path, text)
    monkeypatch.setenv("PHYSAGENT_CLUSTER", str(path))
    with pytest.raises(ToolInputError) as caught:
        cluster_config()
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_the_slurm_job_script_asks_for_the_configured_resources(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Partition, account, cores, memory, walltime, extra directives and the prologue reach the #SBATCH script;
    one single-threaded Dask worker process per core."""
    monkeypatch.setenv("PHYSAGENT_CLUSTER", str(_file(tmp_path, SLURM)))
    config = cluster_config()
    assert config is not None
    script = job_script(config)
    for line in ("#SBATCH -p allcpu", "#SBATCH -A cms", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G",
                 "#SBATCH -t 04:00:00", "#SBATCH --constraint=EPYC",
                 "source /data/dust/user/me/physagent/.venv/bin/activate"):
        assert line in script
    assert "--nthreads 1" in script and "--nworkers 8" in script


def test_the_htcondor_job_script_asks_for_the_configured_resources(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Cores, memory, disk and the site's submit-file keys (a runtime request, requirements) reach the script."""
    monkeypatch.setenv("PHYSAGENT_CLUSTER", str(_file(tmp_path, HTCONDOR)))
    config = cluster_config()
    assert config is not None
    script = job_script(config)
    for line in ("MY.DaskWorkerCores = 4", "MY.DaskWorkerMemory = 8000000000", "MY.DaskWorkerDisk = 10000000000",
                 "+RequestRuntime = 7200", 'requirements = OpSysAndVer == "AlmaLinux9"', "--nworkers 4"):
        assert line in script


def test_cluster_status_shows_the_fork_pool_and_a_configured_cluster(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`physagent cluster status` names the executor (fork pool and size, or the cluster), starting nothing."""
    runner = CliRunner()
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "none")
    monkeypatch.setenv("PHYSAGENT_WORKERS", "2")
    result = runner.invoke(app, ["cluster", "status"])
    assert result.exit_code == 0, result.output
    assert "executor: fork pool" in result.output and "workers: 2" in result.output
    monkeypatch.setenv("PHYSAGENT_CLUSTER", str(_file(tmp_path, SLURM)))
    result = runner.invoke(app, ["cluster", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"kind": "slurm"' in result.output and '"workers": null' in result.output
    assert "(8 cores, 32GB, walltime 04:00:00)" in result.output
    script = runner.invoke(app, ["cluster", "job-script"])
    assert script.exit_code == 0 and "#SBATCH -p allcpu" in script.output
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "local:9x")
    bad = runner.invoke(app, ["cluster", "status"])
    assert bad.exit_code == 2 and "the worker count must be a positive whole number" in bad.output


def test_without_a_cluster_generation_never_imports_dask(tmp_path: Path) -> None:
    """Dask is loaded only when a cluster is configured: a fork-pool run leaves it unimported."""
    code = ("import sys\nfrom physagent.tools import Workspace, call_tool\n"
            "call_tool('generate_events', {'process': 'drell_yan_mumu', 'n_events': 100, 'mpi': False},"
            f" workspace=Workspace({str(tmp_path)!r}))\n"
            "print(sorted(m for m in ('dask', 'distributed', 'dask_jobqueue') if m in sys.modules))\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PHYSAGENT_CLUSTER": "none"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_scheduler_address_runs_the_shards_there_and_status_counts_its_workers(
        workspace: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """PHYSAGENT_CLUSTER=tcp://… connects to a running scheduler (here an in-process one with one thread worker):
    status shows its address and worker count, and a sample made there equals the fork pool's."""
    from distributed import LocalCluster

    from physagent.tools import call_tool, close_cluster

    args = {"process": "drell_yan_mumu", "n_events": 200, "mpi": False, "seed": 6, "shards": 2}
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "none")
    forked = call_tool("generate_events", args, workspace=workspace).result  # type: ignore[arg-type]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        monkeypatch.setenv("PHYSAGENT_CLUSTER", cluster.scheduler_address)
        try:
            status = execution_status()
            assert (status.kind, status.workers, status.address) == ("scheduler", 1, cluster.scheduler_address)
            remote = call_tool("generate_events", args, workspace=workspace,  # type: ignore[arg-type]
                               use_cache=False).result
        finally:
            close_cluster()
    assert remote.events.sha256 == forked.events.sha256
    execution = remote.events.metadata["execution"]
    assert (execution["cluster"], execution["scheduler"]) == ("scheduler", cluster.scheduler_address)
