"""``physagent cluster``: what the tools' parallel work runs on (fork pool or Dask cluster), and batch job scripts."""

from __future__ import annotations

from typing import Annotated

import typer

from physagent.app._common import JsonFlag, out, print_json, reporting_errors
from physagent.tools import CLUSTER_VARIABLE, ToolInputError, cluster_config, execution_status, job_script

__all__ = ["cluster_app"]

cluster_app = typer.Typer(help=f"Where generation shards run: the local fork pool, or the Dask cluster that "
                               f"{CLUSTER_VARIABLE} (or cluster.yaml in the workspace) configures.",
                          no_args_is_help=True)


@cluster_app.command("status")
def cluster_status(
    connect: Annotated[bool, typer.Option(help="Connect to a configured scheduler address to count its workers.")
                       ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Show what the tools would run on: the fork pool and its size, or the Dask cluster's kind, address, workers.

    A local cluster or batch jobs are not started just to look.
    """
    with reporting_errors():
        status = execution_status(connect=connect)
    if as_json:
        print_json(status.to_dict())
        return
    out.print(f"executor: {status.kind}", highlight=False)
    out.print(f"  {status.description}", highlight=False, markup=False)
    out.print(f"  configured by: {status.source}", highlight=False, markup=False)
    if status.address:
        out.print(f"  scheduler: {status.address}", highlight=False, markup=False)
    unknown = "not connected" if status.kind == "scheduler" else "not started"
    out.print(f"  workers: {unknown if status.workers is None else status.workers}", highlight=False)


@cluster_app.command("job-script")
def cluster_job_script() -> None:
    """Print the batch job script a configured SLURM or HTCondor cluster submits (no batch system needed)."""
    with reporting_errors():
        config = cluster_config()
        if config is None:
            raise ToolInputError(f"no cluster is configured, so there is no job script. Set {CLUSTER_VARIABLE} to "
                                 "a cluster YAML file with kind: slurm or kind: htcondor.")
        script = job_script(config)
    out.print(script, highlight=False, markup=False)
