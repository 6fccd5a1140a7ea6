r"""``apply_tagger``: score jets with a trained tagger, writing one score per jet to a table artifact.

Takes a ``dataset`` artifact (every row; the table keeps ``row``, ``label``, ``split``, ``weight``) or a
``jets`` artifact from ``cluster_jets`` (every jet of every event; the table keeps ``event`` and ``jet``,
the jet's index in its event). Both also get the jet's ``pt``, ``eta``, ``mass`` [GeV] and ``score`` ∈
[0, 1] (signal probability). The jets must carry what the model was trained on (constituents with pid
and charge for 'kinematic+pid' models, substructure for the BDT) and no NaNs; a model applied outside
the pT/η window it was trained in still scores, but the scores mean less — the result says so.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.tag._inference import check_inputs_match, inputs_for, load_tagger, score_model
from physagent.tools.tag.train import ModelRef

__all__ = ["TaggerScores", "apply_tagger"]

JetsOrDatasetRef = Annotated[str, Accepts(("dataset", "jets")), Field(pattern=ARTIFACT_ID_PATTERN)]
_KEPT = ("pt", "eta", "mass")


class TaggerScores(ToolResult):
    """A tagger's score for every jet of an artifact."""

    scores: Artifact = Field(description="Table artifact scores.parquet: identifiers, pt, eta, mass, score.")
    n_jets: int = Field(description="Jets scored.")
    mean_score: float = Field(description="Mean signal score.")
    fraction_above_half: float = Field(description="Fraction of jets with score ≥ 0.5 (tagged as signal).")
    outside_training_window: float = Field(
        description="Fraction of jets outside the pT/|η| window the model was trained in.")


@tool(category="tag", version="1")
def apply_tagger(
    model: Annotated[ModelRef, Field(description="Id of a model artifact from train_tagger.")],
    jets: Annotated[JetsOrDatasetRef, Field(description="Id of a jets artifact (cluster_jets) or dataset artifact "
                                                        "(make_jet_dataset) to score.")],
    *,
    ctx: ToolContext,
) -> TaggerScores:
    """Score jets with a trained tagger and save one signal score per jet as a table.

    Works on any jets artifact from cluster_jets or on a dataset; returns the table artifact and the
    fraction of jets tagged as signal at score 0.5.
    """
    from physagent.tools._io import read_parquet

    model_artifact = ctx.artifact(model, "model")
    fitted, card = load_tagger(model_artifact)
    source = ctx.artifact(jets, "jets")
    flat, ids = _flat_jets(read_parquet(source.path), source.kind)
    if len(flat) == 0:
        raise ToolInputError.for_param("apply_tagger", "jets", jets, "holds no jets to score. Check its cuts.")
    check_inputs_match(card, flat, "apply_tagger", "jets", jets)
    features = card["features"]
    scores = score_model(fitted, card["model"], inputs_for(flat, features["n_constituents"], features["set"]))
    return _write(ctx, flat, ids, scores, card, model_artifact, source)


def _flat_jets(data: Any, kind: str) -> tuple[Any, dict[str, np.ndarray]]:
    """One record per jet, and the columns that identify each jet in its artifact."""
    import awkward as ak

    if kind == "dataset":
        ids = {"row": np.arange(len(data), dtype=np.int64)}
        return data, ids | {name: np.asarray(data[name]) for name in ("label", "split", "weight")}
    counts = np.asarray(ak.num(data.jets))
    event = np.repeat(np.asarray(data.event, dtype=np.int64), counts)
    jet = np.asarray(ak.flatten(ak.local_index(data.jets, axis=1)), dtype=np.int64)
    return ak.flatten(data.jets), {"event": event, "jet": jet}


def _write(ctx: ToolContext, flat: Any, ids: dict[str, np.ndarray], scores: np.ndarray, card: dict[str, Any],
           model: Artifact, source: Artifact) -> TaggerScores:
    import awkward as ak

    from physagent.tools._io import write_parquet

    kinematics = {name: np.asarray(flat[name], dtype=np.float32) for name in _KEPT}
    outside = _outside_window(kinematics, card)
    pending = ctx.new_artifact("table")
    write_parquet(ak.zip(ids | kinematics | {"score": scores.astype(np.float32)}), pending.directory / "scores.parquet")
    meta = {"model": model.id, "source": source.id, "model_kind": card["model"], "n_jets": len(scores),
            "outside_training_window": outside}
    artifact = pending.finish("scores.parquet", f"{card['model']} scores ({model.id}) for {len(scores):,} jets of "
                              f"{source.id}", meta)
    return TaggerScores(scores=artifact, n_jets=len(scores), mean_score=float(scores.mean()),
                        fraction_above_half=float((scores >= 0.5).mean()), outside_training_window=outside)


def _outside_window(kinematics: dict[str, np.ndarray], card: dict[str, Any]) -> float:
    cuts = card["dataset"].get("cuts") or {}
    if not cuts:
        return 0.0
    pt, eta = kinematics["pt"], kinematics["eta"]
    inside = (pt > cuts["pt_min_gev"]) & (pt < cuts["pt_max_gev"]) & (np.abs(eta) < cuts["eta_max"])
    return float(1.0 - inside.mean())
