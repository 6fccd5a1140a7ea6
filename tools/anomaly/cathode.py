r"""``cathode_search``: CATHODE — a conditional flow learns the background, a classifier finds what differs.

Classifying Anomalies THrough Outer Density Estimation (Hallin et al., arXiv:2109.00546):

1. A conditional normalizing flow p(x | m_jj) — a zuko neural spline flow (Durkan et al.,
   arXiv:1906.04032) with the preprocessing of :mod:`tools.generate._flows` — is trained on the
   features x of the *sideband* data, with early stopping on a fifth of them (:mod:`tools.generate._fitting`).
2. It is interpolated into the signal region: m_jj values are drawn from a Gaussian KDE of the observed
   signal-region m_jj (rejecting draws outside the region), and x ~ p(x | m_jj) for each, ``oversampling``
   times as many samples as signal-region data events.
3. A classifier separates the signal-region data from these background samples with k folds
   (:mod:`tools.anomaly._classifiers`): if the flow is right, the optimal classifier is monotonic in
   p_data/p_background, i.e. in the signal-to-background likelihood ratio. Its P(data | x) is the score.

Every signal-region data event is scored out of fold, other data events by one fold classifier each (so
scores in and outside the signal region share one distribution and a cut fakes no bump), the labelled test
set by the mean of the fold classifiers. m_jj is a condition of the flow, never a classifier input, and no truth label
is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import tool
from physagent.tools.anomaly._classifiers import (
    ClassifierParam,
    DatasetParam,
    check_class_counts,
    check_not_empty,
    feature_matrix,
    kfold_classify,
    search_windows,
)
from physagent.tools.anomaly._method_result import AnomalyScores, write_scores
from physagent.tools.anomaly._search_data import MASS, Windows, check_features, read_search_data

__all__ = ["CathodeSearch", "cathode_search", "sample_signal_region"]

_TOOL = "cathode_search"
MIN_SIDEBAND_EVENTS = 200  # below this a flow of four features learns the sample, not the density
_PATIENCE = 5
_BATCH_SIZE = 256
FlowSize = Literal["tiny", "small"]


class CathodeSearch(AnomalyScores):
    """CATHODE anomaly scores, with how the background flow trained."""

    n_background_samples: int = Field(description="Flow samples in the signal region the classifier saw.")
    flow_epochs_run: int = Field(description="Flow training epochs run before early stopping.")
    flow_best_epoch: int = Field(description="Epoch whose weights were kept (lowest validation loss).")
    flow_val_nll: float = Field(description="Validation negative log-likelihood of the flow, nats per event "
                                            "(of the standardised features; lower is better).")
    flow_train_wall_s: float = Field(description="Flow training wall time in seconds.")


@dataclass(frozen=True)
class _Flow:
    model: Any
    history: list[dict[str, float]]
    best_epoch: int
    wall_s: float


@tool(category="anomaly", version="1")
def cathode_search(
    dataset: DatasetParam,
    features: Annotated[list[str] | None, Field(max_length=16, description=(
        "Features the flow learns and the classifier reads, columns of the dataset (None: mj1_gev, "
        "delta_mj_gev, tau21_j1, tau21_j2). Never mjj_gev: it is the flow's condition."))] = None,
    classifier: ClassifierParam = "bdt",
    n_folds: Annotated[int, Field(ge=2, le=10, description="k of the k-fold classifier: every signal-region "
                                                           "event is scored by a model that did not train on "
                                                           "it.")] = 5,
    oversampling: Annotated[int, Field(ge=1, le=20, description="Flow samples per signal-region data event "
                                                                "(CATHODE uses 4).")] = 4,
    flow_size: Annotated[FlowSize, Field(description="tiny (3 spline transforms of 32-32 units; seconds) or "
                                                     "small (5 of 64-64; better on large datasets).")] = "small",
    flow_epochs: Annotated[int, Field(ge=1, le=1000, description="Maximum flow training epochs (stops early "
                                                                 f"after {_PATIENCE} without improvement).")] = 50,
    signal_region_gev: Annotated[list[float] | None, Field(min_length=2, max_length=2, description=(
        "Signal region [low, high] in m_jj, GeV (None: the dataset's)."))] = None,
    seed: Annotated[int, Field(ge=0, description="Random seed for the flow, its samples, the folds and the "
                                                 "classifiers.")] = 0,
    *,
    ctx: ToolContext,
) -> CathodeSearch:
    """Search for an anomaly with CATHODE: a sideband flow samples the background, a classifier finds the excess.

    Trains a conditional normalizing flow p(features | m_jj) on the sidebands, samples it in the signal
    region, and scores data events by a k-fold classifier of signal-region data vs those samples; no truth
    labels are read. Evaluates AUC and SIC on the labelled test set.
    """
    data = read_search_data(ctx, dataset)
    chosen = check_features(_TOOL, features, data)
    windows = search_windows(_TOOL, data, signal_region_gev)
    observed = data.observed()
    x, mjj = feature_matrix(observed, chosen), np.asarray(observed[MASS], dtype=np.float64)
    in_sr, in_sb = windows.in_signal_region(mjj), windows.in_sidebands(mjj)
    _check_counts(windows, int(in_sr.sum()), int(in_sb.sum()), n_folds, dataset)
    flow = _train_flow(ctx, x[in_sb], mjj[in_sb], flow_size, flow_epochs, seed)
    samples = sample_signal_region(flow.model, mjj[in_sr], windows, oversampling * int(in_sr.sum()), seed)
    models = kfold_classify(ctx, np.concatenate([x[in_sr], samples]),
                            np.concatenate([np.ones(int(in_sr.sum())), np.zeros(len(samples))]).astype(np.int64),
                            classifier, n_folds, seed, "CATHODE classifier")
    scores = np.empty(len(mjj))
    scores[in_sr] = models.out_of_fold[:int(in_sr.sum())]
    scores[~in_sr] = models.predict_like_out_of_fold(x[~in_sr])
    names = ", ".join(chosen)
    seen = [f"data: {names} and {MASS} of the sideband events (flow training, p(x | {MASS}))",
            f"data: {MASS} of the signal-region events (a KDE, to draw {MASS} for the flow samples)",
            f"data: {names} of the signal-region events (classifier: data vs flow samples)"]
    return write_scores(
        ctx, data, scores, models.predict(feature_matrix(data.test, chosen)), "cathode", seen,
        n_data_events_seen=int((in_sr | in_sb).sum()), windows=windows, label=f"CATHODE ({classifier})",
        notes=_notes(flow, flow_size, classifier, n_folds, oversampling, len(samples)), result_type=CathodeSearch,
        n_background_samples=len(samples), flow_epochs_run=len(flow.history), flow_best_epoch=flow.best_epoch,
        flow_val_nll=float(flow.history[flow.best_epoch - 1]["val_loss"]), flow_train_wall_s=flow.wall_s,
    )


def _check_counts(windows: Windows, n_sr: int, n_sb: int, n_folds: int, dataset: str) -> None:
    check_not_empty(_TOOL, windows, {"signal region": n_sr, "sidebands": n_sb})
    check_class_counts(_TOOL, {"signal region": n_sr}, n_folds, "widen signal_region_gev, or make a larger dataset")
    if n_sb < MIN_SIDEBAND_EVENTS:
        lo, hi = windows.sidebands_gev
        raise ToolInputError.for_param(_TOOL, "dataset", dataset, (
            f"has {n_sb} events in the sidebands {lo:g}–{hi:g} GeV; the background flow needs at least "
            f"{MIN_SIDEBAND_EVENTS}. Make a larger dataset or narrow signal_region_gev."))


def _train_flow(ctx: ToolContext, x: np.ndarray, mjj: np.ndarray, size: str, epochs: int, seed: int) -> _Flow:
    """p(x | m_jj) on the sideband events, early-stopped on a seeded fifth of them."""
    import torch

    from physagent.tools.generate._architectures import ARCHITECTURES
    from physagent.tools.generate._fitting import Settings, fit, split_indices
    from physagent.tools.generate._flows import TabularFlow

    torch.manual_seed(seed)
    settings = Settings(epochs=epochs, batch_size=_BATCH_SIZE, learning_rate=1e-3, weight_decay=0.0,
                        patience=_PATIENCE, validation_fraction=0.2, seed=seed)
    train, val = split_indices(len(x), settings.validation_fraction, seed)
    condition = np.log(mjj)[:, None]
    flow = TabularFlow("nsf", x.shape[1], 1, ARCHITECTURES["flow"][size])
    flow.x_norm.fit(x[train], "auto")
    flow.c_norm.fit(condition[train], "none")
    tensors = (torch.from_numpy(x).float(), torch.from_numpy(condition).float())
    fitted = fit(ctx, flow, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors), settings,
                 "CATHODE flow")
    return _Flow(fitted.model, fitted.history, fitted.best_epoch, fitted.wall_s)


def sample_signal_region(flow: Any, mjj_sr: np.ndarray, windows: Windows, n: int, seed: int) -> np.ndarray:
    """``n`` background samples x ~ p(x | m_jj), m_jj from a KDE of ``mjj_sr`` kept inside the signal region.

    Samples with a non-finite feature (rare, far in a spline's tails) are dropped.
    """
    import torch
    from scipy.stats import gaussian_kde

    from physagent.tools.tag._runtime import torch_threads

    rng = np.random.default_rng(seed)
    kde = gaussian_kde(mjj_sr)
    drawn = np.zeros(0)
    while len(drawn) < n:  # a KDE spills over the edges; most draws land inside
        more = kde.resample(2 * n, seed=rng)[0]
        drawn = np.concatenate([drawn, more[windows.in_signal_region(more)]])
    condition = torch.from_numpy(np.log(drawn[:n])[:, None]).float()
    z = torch.randn(n, flow.x_norm.shift.shape[0], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), torch_threads():
        samples = flow.sample(condition, z).double().numpy()
    return samples[np.all(np.isfinite(samples), axis=1)]


def _notes(flow: _Flow, size: str, classifier: str, n_folds: int, oversampling: int, n_samples: int) -> str:
    return (f"{size} NSF on the sidebands: {len(flow.history)} epochs (kept {flow.best_epoch}), "
            f"{flow.wall_s:.1f} s; {n_samples:,} background samples in the signal region ({oversampling}× the data); "
            f"{classifier} classifiers, {n_folds}-fold, data in the signal region scored out of fold, other events "
            "by one fold classifier each.")
