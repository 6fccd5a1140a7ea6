r"""Values recomputed from an artifact's files, independently of what the tool that made it reported.

An eval that trusted a tool's reported numbers would pass a run whose artifact is wrong; these read
the file itself:

- ``n_rows``: rows of a Parquet artifact (events of a sample, rows of a table, jets of a dataset);
- ``n_jets``: jets of a ``jets`` artifact over all events, ``Σ_events len(jets)``;
- ``column_mean``: mean of a flat numeric column, e.g. ``score`` of a tagger's score table;
- ``entries``: histogram fills, under- and overflow included (``Σ counts``; the sum of weights when weighted);
- ``sum_weights``: the same sum named for weighted histograms: ``Σ w`` over every bin, flow included — the
  expected events σ·L of a histogram made with ``luminosity_fb``;
- ``mean``, ``std``: from the in-range bin contents at the bin centres, ``x̄ = Σ wᵢ cᵢ / Σ wᵢ`` — a binned
  estimate, within about 1 % of the exact mean for smooth distributions in ≥ 20 bins;
- ``peak``: centre of the highest bin;
- ``tree_entries``: entries of the (only) TTree or RNTuple of a ROOT file, read with uproot;
- ``auc``: area under the ROC curve of a model's test scores (``test_scores.parquet``: label, weight,
  score), by the trapezoid rule over score thresholds, ties grouped;
- ``n_showers``: showers in a ``showers`` artifact (rows of ``incident_energies`` in its CaloChallenge file);
- ``shower_energy_mean``: mean over showers of the summed cell energies, in MeV;
- ``bytes``: size of the primary file (a plot or a script was really written).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MeasureError", "measure"]


class MeasureError(ValueError):
    """The artifact's file cannot give the measure (missing, unreadable, or the field is absent)."""


def measure(name: str, path: Path | str, field: str | None = None) -> float:
    """Recompute ``name`` (one of :data:`physagent.evals.schema.MEASURES`) from the artifact's primary file.

    Raises:
        MeasureError: the file is missing or does not hold what the measure reads.
    """
    path = Path(path)
    if not path.exists():
        raise MeasureError(f"{path} does not exist")
    try:
        return float(_MEASURES[name](path, field))
    except MeasureError:
        raise
    except Exception as exc:  # a damaged file can fail in awkward, uproot, json or numpy alike
        raise MeasureError(f"cannot read {name} from {path.name}: {type(exc).__name__}: {exc}") from exc


def _n_rows(path: Path, field: str | None) -> float:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _n_jets(path: Path, field: str | None) -> float:
    import awkward as ak

    return float(ak.sum(ak.num(ak.from_parquet(path, columns=["jets.pt"])["jets"], axis=1)))


def _column_mean(path: Path, field: str | None) -> float:
    import awkward as ak

    array = ak.from_parquet(path)
    if field not in ak.fields(array):
        raise MeasureError(f"{path.name} has no column {field!r}; it has: {', '.join(ak.fields(array))}")
    values = ak.to_numpy(ak.flatten(array[field], axis=None)).astype(float)
    if values.size == 0:
        raise MeasureError(f"column {field!r} of {path.name} is empty")
    return float(values.mean())


def _histogram(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts over every bin including flow, in-range counts, x bin centres) of a 1-D UHI histogram."""
    document = json.loads(path.read_text())
    axis = document["axes"][0]
    edges = np.linspace(axis["lower"], axis["upper"], axis["bins"] + 1) if axis["type"] == "regular" \
        else np.asarray(axis["edges"], dtype=float)
    values = np.asarray(document["storage"]["values"], dtype=float)
    if values.ndim != 1:
        raise MeasureError(f"{path.name} is a {values.ndim}-D histogram; the measures read 1-D ones")
    start = 1 if axis.get("underflow", False) else 0
    inside = values[start:start + edges.size - 1]
    return values, inside, (edges[:-1] + edges[1:]) / 2


def _entries(path: Path, field: str | None) -> float:
    return float(_histogram(path)[0].sum())


def _sum_weights(path: Path, field: str | None) -> float:
    """Σw over every bin, flow included: the expected events of a luminosity-normalised histogram."""
    return float(_histogram(path)[0].sum())


def _mean(path: Path, field: str | None) -> float:
    _, counts, centres = _histogram(path)
    if counts.sum() <= 0:
        raise MeasureError(f"{path.name} has no in-range entries")
    return float(np.average(centres, weights=counts))


def _std(path: Path, field: str | None) -> float:
    mean = _mean(path, field)
    _, counts, centres = _histogram(path)
    return float(np.sqrt(np.average((centres - mean) ** 2, weights=counts)))


def _peak(path: Path, field: str | None) -> float:
    _, counts, centres = _histogram(path)
    return float(centres[int(np.argmax(counts))])


def _tree_entries(path: Path, field: str | None) -> float:
    import uproot

    with uproot.open(path) as file:
        trees = [k for k, c in file.classnames().items() if c in ("TTree", "ROOT::RNTuple")]
        if len(trees) != 1:
            raise MeasureError(f"{path.name} holds {len(trees)} trees; the measure reads files with one")
        return float(file[trees[0]].num_entries)


def _auc(path: Path, field: str | None) -> float:
    import awkward as ak

    scores = ak.from_parquet(path.parent / "test_scores.parquet")
    label = ak.to_numpy(scores["label"]).astype(int)
    score = ak.to_numpy(scores["score"]).astype(float)
    weight = ak.to_numpy(scores["weight"]).astype(float) if "weight" in ak.fields(scores) else np.ones_like(score)
    return roc_auc(label, score, weight)


def roc_auc(label: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    """Weighted ROC AUC by the trapezoid rule over distinct thresholds (ties share a step).

    >>> round(roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]), np.ones(4)), 3)
    0.75
    """
    order = np.argsort(-score, kind="stable")
    score, label, weight = score[order], label[order], weight[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    tp = np.cumsum(weight * (label == 1))[last_of_tie]
    fp = np.cumsum(weight * (label == 0))[last_of_tie]
    if tp[-1] <= 0 or fp[-1] <= 0:
        raise MeasureError("the test scores hold only one class")
    tpr, fpr = np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _n_showers(path: Path, field: str | None) -> float:
    import h5py

    with h5py.File(path, "r") as handle:
        return len(handle["incident_energies"])


def _shower_energy_mean(path: Path, field: str | None) -> float:
    import h5py

    with h5py.File(path, "r") as handle:
        return float(np.mean(np.sum(handle["showers"][:], axis=1, dtype=np.float64)))


def _bytes(path: Path, field: str | None) -> float:
    return path.stat().st_size


_MEASURES: dict[str, Callable[[Path, Any], float]] = {
    "n_rows": _n_rows, "n_jets": _n_jets, "column_mean": _column_mean, "entries": _entries,
    "sum_weights": _sum_weights, "mean": _mean,
    "std": _std, "peak": _peak, "tree_entries": _tree_entries, "auc": _auc, "n_showers": _n_showers,
    "shower_energy_mean": _shower_energy_mean, "bytes": _bytes,
}
