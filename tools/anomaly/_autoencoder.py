r"""The model core of ``autoencoder_search``: a dense autoencoder whose reconstruction error is the anomaly score.

The network maps the preprocessed features z (:class:`Preprocessing`: log(1 + x/GeV) for masses, then
standardised with the training events' mean and width) through an encoder F → h → h/2 → d and a
mirrored decoder d → h/2 → h → F: plain ``Linear`` layers with ``ReLU`` between them (the latent layer
and the output are linear), so it exports to ONNX as Gemm/Relu only and converts to hls4ml as it is.
It is trained to minimise the mean squared error ‖ẑ − z‖²/F with AdamW and early stopping on a
held-out fifth of the training events (:func:`tools._epochs.early_stopping_epochs`).

The anomaly score of an event is its reconstruction error s = ‖ẑ − z‖²/F (dimensionless): an autoencoder
trained on (mostly) background reconstructs background well and rare, unlike events badly. References:
Farina, Nakai, Shih, arXiv:1808.08992 (autoencoders for new physics); Heimel et al., arXiv:1808.08979;
the unsupervised entries of the LHC Olympics 2020, arXiv:2101.08320.

Training runs on the CPU in one thread (:func:`one_thread`): for a network of a few thousand weights
a GPU or more threads cost more in transfers and synchronisation than they save, and on two shared cores
OpenMP's spin-waiting made an epoch ~20× slower with two threads than with one. Everything is seeded,
and one thread fixes the summation order on every machine.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from physagent.tools._context import ToolContext
from physagent.tools._epochs import early_stopping_epochs

__all__ = [
    "ONNX_FILE", "SCORE_ONNX_FILE", "WEIGHTS_FILE", "Architecture", "Autoencoder", "Fitted", "Preprocessing",
    "Settings", "export_autoencoder", "fit_autoencoder", "load_autoencoder", "one_thread", "reconstruction_error",
    "run_onnx",
]

WEIGHTS_FILE = "model.pt"
ONNX_FILE = "model.onnx"  # the network: standardised features → reconstruction (Gemm/Relu; for hls4ml)
SCORE_ONNX_FILE = "score.onnx"  # features in their units → anomaly score (standardisation and MSE included)
OPSET = 17
VALIDATION_FRACTION = 0.2
_CHECK_ROWS = 256


@dataclass(frozen=True)
class Architecture:
    """Widths of the dense autoencoder: F → h → h/2 → d → h/2 → h → F."""

    n_features: int
    hidden_units: int
    latent_dim: int

    @property
    def widths(self) -> list[int]:
        h = self.hidden_units
        return [self.n_features, h, max(h // 2, self.latent_dim), self.latent_dim]

    def as_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "hidden_units": self.hidden_units, "latent_dim": self.latent_dim,
                "layers": self.widths + self.widths[-2::-1], "activation": "relu"}


@dataclass(frozen=True)
class Preprocessing:
    """z = (t(x) − μ)/σ per feature, t = log(1 + x/GeV) for features in GeV (masses, momenta), else t(x) = x.

    Masses fall steeply: in GeV, the few events of the far tail dominate a squared error and the network
    spends itself on them; their logarithm is close to normal. μ and σ are those of the training events
    (σ = 0 is replaced by 1).
    """

    log: np.ndarray  # bool per feature
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, features: list[str]) -> Preprocessing:
        log = np.array([name.endswith("_gev") for name in features])
        t = _transform(x, log)
        std = t.std(axis=0)
        return cls(log, t.mean(axis=0), np.where(std > 0, std, 1.0))

    @classmethod
    def from_dict(cls, card: dict[str, Any]) -> Preprocessing:
        return cls(np.asarray(card["log"], dtype=bool), np.asarray(card["mean"]), np.asarray(card["std"]))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((_transform(x, self.log) - self.mean) / self.std).astype(np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {"log": self.log.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "formula": "z = (t(x) - mean) / std, t(x) = log(1 + max(x, 0)) where log else x"}


def _transform(x: np.ndarray, log: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(log, np.log1p(np.maximum(x, 0.0)), x)


@dataclass(frozen=True)
class Settings:
    """The optimisation settings of ``train_autoencoder``."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    patience: int
    seed: int


@dataclass(frozen=True)
class Fitted:
    """A trained autoencoder (best weights, eval mode), its history, best epoch, wall time and threads."""

    model: Autoencoder
    history: list[dict[str, float]]
    best_epoch: int
    wall_s: float
    threads: int
    n_train: int
    n_validation: int


class Autoencoder(nn.Module):
    """A dense autoencoder of plain Linear and ReLU layers (see the module docstring)."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.encoder = _dense(arch.widths)
        self.decoder = _dense(arch.widths[::-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(z))


def _dense(widths: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them, none after the last (the latent and the output are linear)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _ScoreModule(nn.Module):
    """Features in their units → reconstruction error: what ``score.onnx`` computes."""

    log: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: Autoencoder, prep: Preprocessing) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("log", torch.as_tensor(prep.log, dtype=torch.bool))
        self.register_buffer("mean", torch.as_tensor(prep.mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(prep.std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (torch.where(self.log, torch.log1p(torch.clamp(x, min=0.0)), x) - self.mean) / self.std
        return ((self.model(z) - z) ** 2).mean(dim=1)


def reconstruction_error(model: Autoencoder, z: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """The anomaly score ‖ẑ − z‖²/F per row of the preprocessed features ``z`` (float64; one thread, so the
    scores are the same on every machine)."""
    model.eval()
    out = []
    with torch.no_grad(), one_thread():
        for start in range(0, len(z), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(z[start:start + batch_size], dtype=np.float32))
            out.append(((model(batch) - batch) ** 2).mean(dim=1).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def fit_autoencoder(ctx: ToolContext, z: np.ndarray, arch: Architecture, settings: Settings) -> Fitted:
    """Train on the standardised training events ``z``, holding out :data:`VALIDATION_FRACTION` for stopping."""
    order = np.random.default_rng(settings.seed).permutation(len(z))
    n_val = max(1, round(VALIDATION_FRACTION * len(z)))
    train, val = torch.from_numpy(z[order[n_val:]]), torch.from_numpy(z[order[:n_val]])
    torch.manual_seed(settings.seed)
    with one_thread() as threads:
        model = Autoencoder(arch)
        start = time.perf_counter()
        history, best_state, best_epoch = _epochs(ctx, model, train, val, settings)
        model.load_state_dict(best_state)
        wall = time.perf_counter() - start
    return Fitted(model.eval(), history, best_epoch, wall, threads, len(train), len(val))


@contextlib.contextmanager
def one_thread() -> Iterator[int]:
    """Run torch and the OpenMP/BLAS pools on one thread (see the module docstring), then restore."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield 1
    finally:
        torch.set_num_threads(before)


def _epochs(ctx: ToolContext, model: Autoencoder, train: torch.Tensor, val: torch.Tensor, settings: Settings
            ) -> tuple[list[dict[str, float]], dict[str, Any], int]:
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)

    def run_epoch() -> dict[str, float]:
        train_loss = _train_epoch(model, train, optimiser, settings.batch_size, generator, ctx.check_cancelled)
        val_loss = float(reconstruction_error(model, val.numpy()).mean())
        return {"train_loss": train_loss, "val_loss": val_loss}

    return early_stopping_epochs(ctx, "train autoencoder", model, settings.epochs, settings.patience, run_epoch,
                                 lambda row: f"loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}")


def _train_epoch(model: Autoencoder, train: torch.Tensor, optimiser: Any, batch_size: int, generator: Any,
                 check_cancelled: Callable[[], None]) -> float:
    model.train()
    order = torch.randperm(len(train), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        check_cancelled()
        batch = train[order[start:start + batch_size]]
        loss = ((model(batch) - batch) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item() * len(batch)
    return total / max(len(train), 1)


def load_autoencoder(directory: Path, card: dict[str, Any]) -> tuple[Autoencoder, Preprocessing]:
    """The trained network (eval mode) and its preprocessing from a model artifact's directory and card."""
    arch = card["architecture"]
    model = Autoencoder(Architecture(arch["n_features"], arch["hidden_units"], arch["latent_dim"]))
    model.load_state_dict(torch.load(directory / WEIGHTS_FILE, weights_only=True))
    return model.eval(), Preprocessing.from_dict(card["preprocessing"])


# --- export -------------------------------------------------------------------------------------


def export_autoencoder(model: Autoencoder, prep: Preprocessing, x: np.ndarray, features: list[str],
                       directory: Path) -> dict[str, Any]:
    """Write :data:`ONNX_FILE` and :data:`SCORE_ONNX_FILE`, each checked against torch with onnxruntime on
    the first rows of ``x`` (features in their units). A failed export is reported, not raised."""
    rows = np.ascontiguousarray(x[:_CHECK_ROWS], dtype=np.float32)
    z = prep.apply(rows)
    return {"network": _try(model.eval(), z, "z", "reconstruction", directory / ONNX_FILE),
            "score": _try(_ScoreModule(model, prep).eval(), rows, "x", "score", directory / SCORE_ONNX_FILE)
            | {"features": features}}


def _try(module: nn.Module, example: np.ndarray, input_name: str, output: str, path: Path) -> dict[str, Any]:
    import warnings

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # exporter deprecation chatter, not our users' concern
            tensor = torch.from_numpy(example)
            torch.onnx.export(module, (tensor[:4],), str(path), dynamo=False, input_names=[input_name],
                              output_names=[output], dynamic_axes={input_name: {0: "events"}, output: {0: "events"}},
                              opset_version=OPSET)
            reference = module(tensor).numpy()
        exported = run_onnx(path, {input_name: example}, output)
        return {"file": path.name, "input": input_name, "output": output, "opset": OPSET,
                "max_abs_diff_vs_torch": float(np.abs(exported - reference).max())}
    except Exception as exc:  # an exporter limitation must not lose a trained model; the card says why
        path.unlink(missing_ok=True)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def run_onnx(path: Path, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
    """The output ``output`` of an exported file for ``inputs`` (float32 arrays), with onnxruntime on the CPU."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([output], {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})[0])
