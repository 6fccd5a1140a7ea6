r"""Monitoring with an autoencoder: a small network learns what good runs' histograms look like.

Per histogram, each run's normalised shape p (p_i = n_i / N) is standardised against the reference runs,
x_i = (p_i − μ_i) / σ_i with σ_i² = v_i + max(μ_i, 1/N)/N (μ, v: mean and intrinsic run-to-run variance
of the reference runs; N: the run's entries). A fully connected autoencoder n_bins → 32 → 2 → 32 → n_bins
(tanh) is trained on Poisson counts of random mixtures of the reference runs (Dirichlet weights), fresh
every epoch, so it learns the few directions good runs really vary along and cannot memorise each run
with its statistical noise. A run's score is the χ²/ndf of its shape against the reconstruction,
Σ_i (x_i − x̂_i)² / (n_bins − 1): about 1 for a good run, large when a channel dies or the spectrum
changes in a way the reference runs never showed.

The threshold, unless given, comes from out-of-sample scores of the reference runs (two-fold: each half
is scored by a network trained on the other half): mean + k·max(std, √(2/ndf)), the largest over the
histograms; the floor is the spread of a χ²/ndf, since a handful of runs can understate it. Unlike the
EWMA reference, the network does not adapt: conditions that drift beyond what the reference runs covered
are flagged too.

Reference: autoencoders for DQM, e.g. A. A. Pol et al., "Detector monitoring with artificial neural
networks at the CMS experiment at the CERN Large Hadron Collider", Comput. Softw. Big Sci. 3 (2019) 3,
arXiv:1808.00911.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from physagent.tools.anomaly._dqm import Scores, Sequence, normalised

__all__ = ["autoencoder_scores"]

HIDDEN, LATENT = 32, 2
REPLICAS = 16  # Poisson replicas of every reference run per epoch
LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class _Standardiser:
    """μ and intrinsic variance v of the reference runs' shapes; x = (p − μ)/σ(N)."""

    mean: np.ndarray
    excess: np.ndarray

    def sigma(self, totals: np.ndarray) -> np.ndarray:
        totals = np.maximum(totals, 1.0)[:, None]
        return np.sqrt(self.excess + np.maximum(self.mean, 1.0 / totals) / totals)

    def __call__(self, shapes: np.ndarray, totals: np.ndarray) -> np.ndarray:
        return (shapes - self.mean) / self.sigma(totals)


def _standardiser(shapes: np.ndarray, totals: np.ndarray) -> _Standardiser:
    mean = shapes.mean(axis=0)
    poisson = (np.maximum(mean, 1.0 / totals[:, None]) / totals[:, None]).mean(axis=0)
    excess = np.maximum(shapes.var(axis=0, ddof=1) - poisson, 0.0) if len(shapes) > 1 else np.zeros_like(mean)
    return _Standardiser(mean, excess)


@dataclass
class _Fitted:
    """One histogram's result: scores of every run, out-of-sample scores of the reference runs, the band."""

    chi2_ndf: np.ndarray
    held_out: np.ndarray
    reference: np.ndarray
    sigma: np.ndarray


def autoencoder_scores(sequence: Sequence, n_reference: int, threshold: float | None, k_sigma: float, epochs: int,
                       seed: int, advance: Any = None) -> Scores:
    """Train one autoencoder per histogram on the first ``n_reference`` runs and score every run.

    Without a given ``threshold`` the cut is the largest per-histogram mean + k_sigma·max(std, √(2/ndf)) of
    the reference runs' out-of-sample scores.
    """
    rng = np.random.default_rng(seed)
    with _threads():
        fitted = [_fit_histogram(h.counts, n_reference, epochs, rng, advance) for h in sequence.histograms]
    chi2 = np.column_stack([f.chi2_ndf for f in fitted])
    held_out = np.column_stack([f.held_out for f in fitted])
    ndf = np.array([max(h.counts.shape[1] - 1, 1) for h in sequence.histograms])
    per_hist = held_out.mean(axis=0) + k_sigma * np.maximum(held_out.std(axis=0, ddof=1), np.sqrt(2.0 / ndf))
    cut = float(per_hist.max()) if threshold is None else threshold
    flagged = np.zeros(len(sequence.runs), dtype=bool)
    flagged[n_reference:] = (chi2[n_reference:] > cut).any(axis=1)
    names = [h.name for h in sequence.histograms]
    extra = {"held_out_reference_chi2_ndf": {n: f.held_out.tolist() for n, f in zip(names, fitted, strict=True)},
             "threshold_per_histogram": {n: float(v) for n, v in zip(names, per_hist, strict=True)}}
    return Scores(chi2, flagged, [f.reference for f in fitted], [f.sigma for f in fitted], cut, extra)


def _fit_histogram(counts: np.ndarray, n_reference: int, epochs: int, rng: np.random.Generator, advance: Any
                   ) -> _Fitted:
    first, second = np.arange(n_reference // 2), np.arange(n_reference // 2, n_reference)
    held_out = np.full(n_reference, np.nan)
    for train, test in ((second, first), (first, second)):  # two folds: out-of-sample reference scores
        model, scale = _fit(counts[train], epochs, rng, advance)
        held_out[test] = _score(model, scale, counts[test])[0]
    model, scale = _fit(counts[:n_reference], epochs, rng, advance)
    chi2, reconstruction = _score(model, scale, counts)
    totals = counts.sum(axis=1)
    sigma = np.where(totals[:, None] > 0, scale.sigma(totals), np.nan)
    return _Fitted(chi2, held_out, scale.mean + sigma * reconstruction, sigma)


def training_steps(epochs: int, n_histograms: int) -> int:
    """Epochs run in all (three networks per histogram: two folds and the final one), for progress."""
    return 3 * epochs * n_histograms


def _fit(counts: np.ndarray, epochs: int, rng: np.random.Generator, advance: Any) -> tuple[Any, _Standardiser]:
    import torch

    shapes, totals = normalised(counts)
    scale = _standardiser(shapes, totals)
    torch.manual_seed(int(rng.integers(2**31)))
    model = _network(counts.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    for _ in range(epochs):
        replica = _replicas(shapes, totals, rng)
        inputs = torch.as_tensor(scale(*normalised(replica)), dtype=torch.float32)
        optimiser.zero_grad()
        loss = torch.mean((model(inputs) - inputs) ** 2)
        loss.backward()
        optimiser.step()
        if advance is not None:
            advance()
    return model.eval(), scale


def _replicas(shapes: np.ndarray, totals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts of random mixtures of the reference runs (Dirichlet weights): training samples that fill
    the space between the runs, so the network cannot learn the runs one by one with their noise."""
    weights = rng.dirichlet(np.ones(len(shapes)), size=len(shapes) * REPLICAS)
    return rng.poisson((weights @ totals)[:, None] * (weights @ shapes)).astype(np.float64)


def _score(model: Any, scale: _Standardiser, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """χ²/ndf against the reconstruction per run (+inf for an empty run), and the reconstruction."""
    import torch

    shapes, totals = normalised(counts)
    x = scale(shapes, totals)
    with torch.no_grad():
        reconstruction = model(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(np.float64)
    used = (scale.mean > 0)[None, :] | (shapes > 0)
    chi2 = np.where(used, (x - reconstruction) ** 2, 0.0).sum(axis=1) / np.maximum(used.sum(axis=1) - 1, 1)
    return np.where(totals > 0, chi2, np.inf), reconstruction


def _network(n_bins: int) -> Any:
    from torch import nn

    return nn.Sequential(nn.Linear(n_bins, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, LATENT),
                         nn.Linear(LATENT, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, n_bins))


@contextlib.contextmanager
def _threads() -> Iterator[None]:
    """One torch thread: the networks are tiny, and thread start-up would dominate."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
