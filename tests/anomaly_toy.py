"""A fast LHCO-R&D-like anomaly dataset with analytic shapes, for testing the search methods.

Not physics: the methods' tests need seconds, not a Pythia run. Background m_jj falls like a dijet
spectrum; the signal is a W′ (3.5 TeV) → X(500 GeV) Y(100 GeV) bump with two-prong jets (low τ21).
The real dataset comes from ``make_anomaly_dataset``.
"""

from __future__ import annotations

import time
import uuid

import numpy as np

from physagent.tools import CallRecord, ToolContext, Workspace, package_versions
from physagent.tools._artifacts import Artifact
from physagent.tools.anomaly._injection import split_and_inject
from physagent.tools.anomaly._search_data import Table, Windows, write_search_data

WINDOWS = Windows((3300.0, 3700.0), (2700.0, 5000.0))


def toy_background(n: int, rng: np.random.Generator) -> Table:
    mjj = 2600.0 * (1.0 + rng.pareto(6.0, n))
    masses = np.sort(np.abs(rng.normal(0.0, 1.0, (n, 2))) * 60.0 + rng.exponential(40.0, (n, 2)), axis=1)
    return _table(mjj, masses, rng.beta(5, 3, (n, 2)), rng)


def toy_signal(n: int, rng: np.random.Generator) -> Table:
    mjj = rng.normal(3500.0, 120.0, n)
    masses = np.column_stack([rng.normal(100.0, 8.0, n), rng.normal(500.0, 25.0, n)])
    return _table(mjj, masses, rng.beta(3, 6, (n, 2)), rng)


def _table(mjj: np.ndarray, masses: np.ndarray, tau21: np.ndarray, rng: np.random.Generator) -> Table:
    n = len(mjj)
    return {"mjj_gev": mjj, "mj1_gev": masses[:, 0], "delta_mj_gev": masses[:, 1] - masses[:, 0],
            "tau21_j1": tau21[:, 0], "tau21_j2": tau21[:, 1], "pt_j1_gev": 0.5 * mjj * rng.uniform(0.8, 1.0, n),
            "pt_j2_gev": 0.45 * mjj * rng.uniform(0.8, 1.0, n), "eta_j1": rng.normal(0, 1, n),
            "eta_j2": rng.normal(0, 1, n)}


def toy_anomaly_dataset(workspace: Workspace, n_background: int = 40_000, s_over_b: float = 0.01,
                        n_signal: int = 4_000, seed: int = 0) -> Artifact:
    """Write a toy ``anomaly_dataset`` artifact into ``workspace`` (as a committed call of a test)."""
    rng = np.random.default_rng(seed)
    background, signal = toy_background(n_background, rng), toy_signal(n_signal, rng)
    background = {k: v[background["mjj_gev"] < WINDOWS.sidebands_gev[1]] for k, v in background.items()}
    tables = split_and_inject(background, signal, s_over_b, WINDOWS, seed)
    card = {"source": "toy (tests/anomaly_toy.py)", "s_over_b": s_over_b, "seed": seed, **WINDOWS.as_dict()}
    with workspace.staging_area() as staging:
        ctx = ToolContext("toy_anomaly_dataset", workspace, staging)
        artifact = write_search_data(ctx, tables, card, f"toy anomaly dataset, S/B={s_over_b:g}")
        key = f"toy-{seed}-{s_over_b}-{n_background}-{n_signal}"
        record = CallRecord(  # a fresh call id each time, so several toys (even equal ones) can share a workspace
            id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool="toy_anomaly_dataset", tool_version="1", inputs={},
            input_artifacts={}, outputs=[artifact.id], result={}, seed=seed, started=time.time(), wall_s=0.0,
            packages=package_versions(), cache_key=key, cached_from=None)
        workspace.commit(ctx.pending, record)
    return artifact
