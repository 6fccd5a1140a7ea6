r"""The anomaly-search dataset: what every method reads, and the one place truth labels live.

An ``anomaly_dataset`` artifact (id prefix ``ad``) holds three flat Parquet tables with the columns
:data:`COLUMNS` (masses in GeV, τ21 dimensionless) plus ``label`` (truth: 1 signal, 0 background):

- ``data.parquet`` — the "observed" sample: background with signal injected at the chosen S/B. Methods
  see it only through :meth:`SearchData.observed`, which drops ``label``.
- ``reference_background.parquet`` — an independent background simulation for the *idealized*
  reference (data vs perfect background model). No method of the search may read it.
- ``test.parquet`` — held-out signal and background in the signal region, labelled, for evaluation
  (ROC, SIC) only: :mod:`tools.anomaly._evaluation` is its sole reader.

``card.json`` records the processes, masses, cuts, S/B, counts and the m_jj windows (:class:`Windows`).
Features follow the LHC Olympics R&D convention: jets ordered by mass, ``mj1_gev`` the lighter,
``delta_mj_gev`` = m_j2 − m_j1 ≥ 0, ``tau21_j1``/``tau21_j2`` the τ21 of the lighter/heavier jet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError

__all__ = [
    "COLUMNS", "FEATURES", "KIND", "MASS", "TRUTH", "AnomalyDatasetRef", "SearchData", "Table", "Windows",
    "check_features", "read_search_data", "read_search_table", "write_search_data",
]

KIND = "anomaly_dataset"
MASS = "mjj_gev"
TRUTH = "label"
FEATURES = ("mj1_gev", "delta_mj_gev", "tau21_j1", "tau21_j2")  # the standard LHCO R&D set
COLUMNS = (MASS, *FEATURES, "pt_j1_gev", "pt_j2_gev", "eta_j1", "eta_j2")
_FILES = {"data": "data.parquet", "reference": "reference_background.parquet", "test": "test.parquet"}

AnomalyDatasetRef = Annotated[str, Accepts((KIND,)), Field(pattern=ARTIFACT_ID_PATTERN)]
Table = dict[str, np.ndarray]  # column name → 1-D array, all of one length


@dataclass(frozen=True)
class Windows:
    """The m_jj signal region and the sidebands around it, in GeV."""

    signal_region_gev: tuple[float, float]
    sidebands_gev: tuple[float, float]  # outer edges: [lo, SR_lo) ∪ [SR_hi, hi)

    def in_signal_region(self, mjj_gev: np.ndarray) -> np.ndarray:
        lo, hi = self.signal_region_gev
        return (mjj_gev >= lo) & (mjj_gev < hi)

    def in_sidebands(self, mjj_gev: np.ndarray) -> np.ndarray:
        (lo, hi), (sr_lo, sr_hi) = self.sidebands_gev, self.signal_region_gev
        return ((mjj_gev >= lo) & (mjj_gev < sr_lo)) | ((mjj_gev >= sr_hi) & (mjj_gev < hi))

    def as_dict(self) -> dict[str, list[float]]:
        return {"signal_region_gev": list(self.signal_region_gev), "sidebands_gev": list(self.sidebands_gev)}


@dataclass(frozen=True)
class SearchData:
    """The three tables of an anomaly dataset and its card."""

    artifact: Artifact
    data: Table
    reference: Table
    test: Table
    card: dict[str, Any]

    @property
    def windows(self) -> Windows:
        return Windows(tuple(self.card["signal_region_gev"]), tuple(self.card["sidebands_gev"]))  # type: ignore[arg-type]

    def observed(self) -> Table:
        """The observed sample as a search sees it: every column but the truth label."""
        return {name: values for name, values in self.data.items() if name != TRUTH}


def write_search_data(
    ctx: ToolContext, tables: dict[str, Table], card: dict[str, Any], summary: str,
    execution: dict[str, Any] | None = None,
) -> Artifact:
    """Write ``tables`` (keys ``data``, ``reference``, ``test``) and ``card`` as an ``anomaly_dataset``;
    ``execution`` (where the generation ran) goes into the artifact's record only, not into ``card.json``."""
    import awkward as ak

    from physagent.tools._io import write_json, write_parquet

    pending = ctx.new_artifact(KIND)
    for key, name in _FILES.items():
        table = tables[key]
        write_parquet(ak.zip({c: np.asarray(v) for c, v in table.items()}, depth_limit=1), pending.directory / name)
    write_json(card, pending.directory / "card.json")
    return pending.finish(_FILES["data"], summary, card | ({"execution": execution} if execution else {}))


def read_search_data(ctx: ToolContext, artifact_id: str, param: str = "dataset") -> SearchData:
    """Load an ``anomaly_dataset`` artifact (the registry has already checked its kind)."""
    import json


    artifact = ctx.artifact(artifact_id, param)
    tables = {key: read_search_table(artifact, key) for key in _FILES}
    card = json.loads((artifact.directory / "card.json").read_text())
    return SearchData(artifact, tables["data"], tables["reference"], tables["test"], card)


def read_search_table(artifact: Artifact, key: str) -> Table:
    """One table of an ``anomaly_dataset``: ``data``, ``reference`` or ``test`` (truth label included)."""
    import awkward as ak

    array = ak.from_parquet(artifact.directory / _FILES[key])
    return {name: ak.to_numpy(array[name]) for name in ak.fields(array)}


def check_features(tool: str, features: list[str] | None, data: SearchData, param: str = "features") -> list[str]:
    """The features to use (default :data:`FEATURES`); unknown names or the truth label → a clear error."""
    chosen = list(features) if features else list(FEATURES)
    available = [name for name in data.data if name not in (TRUTH, MASS)]
    if MASS in chosen:
        raise ToolInputError.for_param(tool, param, chosen, f"includes {MASS!r}, the variable the search scans: "
                                       "a classifier on it finds the window, not the signal. Choose from "
                                       + ", ".join(available) + ".")
    if TRUTH in chosen:
        raise ToolInputError.for_param(tool, param, chosen, f"includes the truth column {TRUTH!r}: a search may "
                                       "not see truth labels. Choose from " + ", ".join(available) + ".")
    missing = [name for name in chosen if name not in data.data]
    if missing:
        raise ToolInputError.for_param(tool, param, chosen, f"names {', '.join(missing)}, which the dataset does "
                                       "not have. Choose from " + ", ".join(available) + ".")
    return chosen
