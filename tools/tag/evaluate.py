r"""``evaluate_tagger``: ROC, AUC and background rejection of one or several taggers on one dataset split.

Each model (reloaded from its artifact) scores the chosen split of a dataset — by default the test
split of the dataset the models were trained on. Reported per model, as in the top-tagging comparison
(arXiv:1902.09914) and the ParT paper (arXiv:2202.03772): AUC, background rejection 1/ε_B at signal
efficiencies ε_S = 0.3 and 0.5, accuracy at score 0.5, and the scoring throughput in jets/s on this
machine. Definitions: :mod:`tools.tag._metrics`.

Outputs: a ``table`` artifact ``scores.parquet`` (per jet: ``row`` in the dataset, ``label``, ``weight``
and one column ``score_0``, ``score_1``, … per model, in the order given; ``TaggerMetrics.column`` names
it) from which every number can be recomputed, and a ``plot`` artifact ``roc.png``/``roc.pdf`` with the
ROC curves overlaid (1/ε_B on a log axis against ε_S). Files hold no artifact ids, so a rerun of the
call reproduces them byte for byte.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.tag._inference import check_inputs_match, inputs_for, load_tagger, score_model
from physagent.tools.tag._metrics import metrics, plot_roc, save_png
from physagent.tools.tag.dataset import DatasetRef, read_dataset, split_rows
from physagent.tools.tag.train import ModelRef

__all__ = ["TaggerEvaluation", "TaggerMetrics", "evaluate_tagger"]

Split = Literal["test", "validation", "train", "all"]


class TaggerMetrics(BaseModel):
    """One model's performance on the evaluated jets."""

    model: str = Field(description="Model artifact id.")
    column: str = Field(description="Its scores column in scores.parquet, e.g. 'score_0'.")
    label: str = Field(description="Name in the table and the legend.")
    kind: str = Field(description="part, particlenet, pfn, efn, bdt, mlp or deepsets.")
    n_parameters: int = Field(description="Trainable parameters (BDT: tree nodes).")
    auc: float = Field(description="Area under the ROC curve.")
    rejection_at_30: float = Field(description="Background rejection 1/ε_B at signal efficiency 0.3.")
    rejection_at_50: float = Field(description="Background rejection 1/ε_B at signal efficiency 0.5.")
    accuracy: float = Field(description="Weighted accuracy at score 0.5.")
    inference_jets_per_s: float = Field(description="Scoring throughput on this machine, jets per second.")


class TaggerEvaluation(ToolResult):
    """Taggers compared on one set of jets."""

    results: list[TaggerMetrics] = Field(description="One entry per model, in the order given.")
    table: str = Field(description="The comparison as a Markdown table.")
    best_model: str = Field(description="Id of the model with the highest AUC.")
    scores: Artifact = Field(description="Table artifact scores.parquet: row, label, weight, score_0, score_1, …")
    roc_plot: Artifact = Field(description="Plot artifact roc.png / roc.pdf: 1/ε_B against ε_S, log scale.")
    dataset: str = Field(description="Id of the dataset evaluated on.")
    split: str = Field(description="The split evaluated: test, validation, train or all.")
    n_signal: int = Field(description="Signal jets evaluated.")
    n_background: int = Field(description="Background jets evaluated.")


@tool(category="tag", version="1")
def evaluate_tagger(
    models: Annotated[list[ModelRef], Field(min_length=1, max_length=8, description="Ids of 1 to 8 model "
                                            "artifacts from train_tagger.")],
    dataset: Annotated[DatasetRef | None, Field(description="Id of the dataset to evaluate on (None: the "
                                                            "dataset the models were trained on).")] = None,
    split: Annotated[Split, Field(
        description="Which jets: test (default), validation, train, or all.",
        json_schema_extra={"x-phrases-only": True,  # "train" in "train a tagger and evaluate it" is no split
                           "x-phrases": {"validation": "validation", "training split": "train", "train split": "train",
                                         "training set": "train", "training data": "train", "training jets": "train",
                                         "test split": "test", "test set": "test", "all jets": "all",
                                         "all splits": "all", "whole dataset": "all"}})] = "test",
    labels: Annotated[list[str] | None, Field(json_schema_extra={"x-derived": True},
                                              description="Names for the table and legend, one per model "
                                                          "(None: the model kinds).")] = None,
    *,
    ctx: ToolContext,
) -> TaggerEvaluation:
    """Evaluate jet taggers on a dataset: ROC curve, AUC, background rejection 1/ε_B at ε_S = 0.3 and 0.5.

    With several models, returns a comparison table and one plot with the ROC curves overlaid; the
    per-jet scores are saved so every number can be recomputed.
    """
    if labels is not None and len(labels) != len(models):
        raise ToolInputError.for_param(
            "evaluate_tagger", "labels", labels, f"must have one entry per model ({len(models)}), got {len(labels)}.")
    artifacts = [ctx.artifact(m, "models") for m in models]
    loaded = [(artifact, *load_tagger(artifact)) for artifact in artifacts]
    dataset_id = dataset or _common_dataset([(a.id, card) for a, _, card in loaded])
    source = ctx.artifact(dataset_id, "dataset")
    jets = read_dataset(source.path)
    rows = split_rows(jets, split)
    picked = jets[rows]
    truth, weights = _truth(picked, dataset_id, split)
    names = labels or _default_labels([card["model"] for _, _, card in loaded])
    results, columns = [], {}
    with ctx.progress("score jets", total=len(loaded), unit="models") as bar:
        for index, ((artifact, model, card), name) in enumerate(zip(loaded, names, strict=True)):
            check_inputs_match(card, picked, "evaluate_tagger", "dataset", dataset_id)
            scores, speed = _score(model, card, picked)
            columns[f"score_{index}"] = scores
            results.append(TaggerMetrics(model=artifact.id, column=f"score_{index}", label=name, kind=card["model"],
                                         n_parameters=card["n_parameters"], inference_jets_per_s=speed,
                                         **metrics(truth, scores, weights)))
            bar.advance()
    return _write(ctx, results, columns, rows, truth, weights, source, split)


def _default_labels(kinds: list[str]) -> list[str]:
    """The model kinds, numbered where a kind repeats: ['pfn 1', 'pfn 2', 'bdt']."""
    return [f"{kind} {kinds[:i + 1].count(kind)}" if kinds.count(kind) > 1 else kind for i, kind in enumerate(kinds)]


def _common_dataset(cards: list[tuple[str, dict[str, Any]]]) -> str:
    found = {card["dataset"]["id"] for _, card in cards}
    if len(found) > 1:
        raise ToolInputError.for_param(
            "evaluate_tagger", "dataset", None, f"must be given: the models were trained on different datasets "
            f"({', '.join(sorted(found))}). Pass the dataset to compare them on.")
    return found.pop()


def _truth(jets: Any, dataset_id: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(jets.label, dtype=np.int64)
    if len(truth) == 0 or len(np.unique(truth)) < 2:
        raise ToolInputError.for_param(
            "evaluate_tagger", "split", split, f"of dataset {dataset_id} holds {len(truth)} jets and "
            f"{len(np.unique(truth))} class(es); a ROC curve needs signal and background. Pick another split.")
    return truth, np.asarray(jets.weight, dtype=np.float64)


def _score(model: Any, card: dict[str, Any], jets: Any) -> tuple[np.ndarray, float]:
    features = card["features"]
    inputs = inputs_for(jets, features["n_constituents"], features["set"])
    start = time.perf_counter()
    scores = score_model(model, card["model"], inputs)
    return scores, len(scores) / max(time.perf_counter() - start, 1e-9)


def markdown_table(results: list[TaggerMetrics]) -> str:
    """The comparison as a Markdown table, one row per model."""
    lines = ["| model | kind | parameters | AUC | 1/ε_B @ ε_S=0.3 | 1/ε_B @ ε_S=0.5 | accuracy | jets/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.label} | {r.kind} | {r.n_parameters:,} | {r.auc:.4f} | {r.rejection_at_30:.1f} | "
              f"{r.rejection_at_50:.1f} | {r.accuracy:.4f} | {r.inference_jets_per_s:,.0f} |" for r in results]
    return "\n".join(lines)


def _write(ctx: ToolContext, results: list[TaggerMetrics], columns: dict[str, np.ndarray], rows: np.ndarray,
           truth: np.ndarray, weights: np.ndarray, source: Artifact, split: str) -> TaggerEvaluation:
    import awkward as ak

    from physagent.tools._io import write_parquet

    table = ctx.new_artifact("table")
    write_parquet(ak.zip({"row": rows.astype(np.int64), "label": truth.astype(np.int8),
                          "weight": weights.astype(np.float32)} | columns), table.directory / "scores.parquet")
    meta = {"dataset": source.id, "split": split, "columns": {r.column: r.model for r in results},
            "results": [r.model_dump() for r in results]}
    scores = table.finish("scores.parquet", f"tagger scores of {len(results)} model(s) on {len(rows):,} "
                          f"{split} jets of {source.id}", meta)
    plot = ctx.new_artifact("plot")
    curves = [(f"{r.label}: AUC {r.auc:.4f}, 1/ε_B(0.3) = {r.rejection_at_30:.0f}", truth, columns[r.column],
               weights) for r in results]
    figure = plot_roc(curves, f"{source.summary} — {split} split")
    save_png(figure, plot.directory / "roc.png")
    figure.savefig(plot.directory / "roc.pdf", metadata={"CreationDate": None, "Producer": None}, bbox_inches="tight")
    roc = plot.finish("roc.png", f"ROC curves of {len(results)} tagger(s) on {source.id} ({split})", meta)
    best = max(results, key=lambda r: r.auc)
    return TaggerEvaluation(
        results=results, table=markdown_table(results), best_model=best.model, scores=scores, roc_plot=roc,
        dataset=source.id, split=split, n_signal=int((truth == 1).sum()), n_background=int((truth == 0).sum()),
    )
