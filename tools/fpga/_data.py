r"""The events a float model and its fixed-point twin are compared on, read from a dataset artifact.

- taggers (``mlp``, ``deepsets``, ``bdt``): a ``dataset`` artifact of ``make_jet_dataset`` (labels, weights
  and splits; default the test split) or a ``jets`` artifact of ``cluster_jets`` (no labels: no AUC);
- the autoencoder: an ``anomaly_dataset`` artifact; its labelled test table (signal truth), standardised with
  the model's own preprocessing (:class:`tools.anomaly._autoencoder.Preprocessing`).

At most ``max_events`` events are used, the first ones in the file (no sampling: same events every call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._errors import ToolInputError
from physagent.tools.fpga._models import Exportable

__all__ = ["EvalData", "EvalDatasetRef", "Split", "evaluation_data"]

EvalDatasetRef = Annotated[str, Accepts(("dataset", "jets", "anomaly_dataset")), Field(pattern=ARTIFACT_ID_PATTERN)]
# "train" is also a verb ("train the mlp, then export it"): only these phrases state a split
Split = Annotated[Literal["test", "validation", "train", "all"], Field(json_schema_extra={
    "x-phrases-only": True,
    "x-phrases": {"test split": "test", "test jets": "test", "test events": "test", "validation split": "validation",
                  "validation jets": "validation", "training split": "train", "train split": "train",
                  "training jets": "train", "all jets": "all", "all events": "all", "all splits": "all"}})]
_TAGGER_KINDS = ("dataset", "jets")


@dataclass(frozen=True)
class EvalData:
    """Model inputs of ``n`` events and, when the dataset has them, their labels and weights."""

    dataset: Artifact
    split: str
    x: np.ndarray  # (n, *input_shape), float32
    labels: np.ndarray | None
    weights: np.ndarray | None

    def __len__(self) -> int:
        return len(self.x)


def evaluation_data(tool: str, model: Exportable, dataset: Artifact, split: str, max_events: int) -> EvalData:
    """Inputs (and labels) of ``dataset`` for ``model``; a dataset of the wrong kind is refused by name."""
    if model.task == "autoencoder":
        if dataset.kind != "anomaly_dataset":
            raise ToolInputError.for_param(tool, "dataset", dataset.id, f"is a {dataset.kind!r} artifact; the "
                                           "autoencoder is compared on an anomaly_dataset (make_anomaly_dataset).")
        return _anomaly(tool, model, dataset, max_events)
    if dataset.kind not in _TAGGER_KINDS:
        raise ToolInputError.for_param(tool, "dataset", dataset.id, f"is a {dataset.kind!r} artifact; a tagger is "
                                       "compared on jets: a dataset (make_jet_dataset) or jets (cluster_jets).")
    return _jets(tool, model, dataset, split, max_events)


def _jets(tool: str, model: Exportable, dataset: Artifact, split: str, max_events: int) -> EvalData:
    from physagent.tools._io import read_parquet

    jets = read_parquet(dataset.path)
    labels = weights = None
    if dataset.kind == "dataset":
        from physagent.tools.tag.dataset import split_rows

        jets = jets[split_rows(jets, split)[:max_events]]
        labels = np.asarray(jets.label, dtype=np.int64)
        weights = np.asarray(jets.weight, dtype=np.float64)
    else:
        import awkward as ak

        jets = ak.flatten(jets.jets)[:max_events] if "jets" in ak.fields(jets) else jets[:max_events]
        split = "all"
    if len(jets) == 0:
        raise ToolInputError.for_param(tool, "dataset", dataset.id, f"has no jets in split {split!r}. Pick another "
                                       "split (test, validation, train, all).")
    x = _tagger_input(tool, model, jets, dataset.id)
    return EvalData(dataset, split, x, labels, weights)


def _tagger_input(tool: str, model: Exportable, jets: Any, dataset_id: str) -> np.ndarray:
    if model.kind == "bdt":
        from physagent.tools.tag._inference import check_inputs_match, inputs_for

        check_inputs_match(model.card, jets, tool, "dataset", dataset_id)
        features = model.card["features"]
        return inputs_for(jets, features["n_constituents"], features["set"]).jet
    from physagent.tools.tag._trigger import trigger_input

    try:
        return np.ascontiguousarray(trigger_input(model.card, jets), dtype=np.float32)
    except ToolInputError as exc:  # the message names trigger_input: say which call and parameter it was
        raise ToolInputError(f"{tool}: dataset {dataset_id}: {exc}", tool=tool, param="dataset",
                             value=dataset_id) from None


def _anomaly(tool: str, model: Exportable, dataset: Artifact, max_events: int) -> EvalData:
    from physagent.tools.anomaly._autoencoder import Preprocessing
    from physagent.tools.anomaly._search_data import TRUTH, read_search_table

    test = {name: values[:max_events] for name, values in read_search_table(dataset, "test").items()}
    features = list(model.card["features"])
    missing = [name for name in features if name not in test]
    if missing:
        raise ToolInputError.for_param(tool, "dataset", dataset.id, f"has no {', '.join(missing)}, which the "
                                       f"autoencoder reads ({', '.join(features)}). Use the dataset it was trained "
                                       "on, or one made by make_anomaly_dataset.")
    raw = np.column_stack([np.asarray(test[name], dtype=np.float64) for name in features])
    if not np.isfinite(raw).all():
        raise ToolInputError.for_param(tool, "dataset", dataset.id, "has NaN or infinite feature values in its "
                                       "test table. Rebuild the dataset.")
    z = Preprocessing.from_dict(model.card["preprocessing"]).apply(raw)
    return EvalData(dataset, "test", z, np.asarray(test[TRUTH], dtype=np.int64), None)
