r"""The ``posterior`` artifact: what ``sbi_train`` writes and every SBI tool reads back.

Files (``post-…``):

- ``posterior.pt`` — the state dict of the trained sbi network (density estimator q(θ|x) for NPE, q(x|θ) for
  NLE, classifier for NRE), loaded with ``torch.load(weights_only=True)``: no pickled code runs on load;
- ``card.json`` — method, network, task (name + options, or the user simulator), prior, parameters and
  observables, simulation counts and seeds, training settings and curve, package versions (no wall times:
  they vary between identical runs and live in the artifact's metadata, so a rerun hashes the same);
- ``simulations.npz`` — θ (n, d) and x (n, k), float64, the simulations the network was trained on;
- ``training_curve.png`` — training and validation loss per epoch;
- ``simulator.py`` — the user's simulator code (task ``custom`` only).

:func:`load_posterior` rebuilds the network with the card's settings (sbi's builder on a batch of the stored
simulations for the shapes; z-scoring statistics are buffers of the state dict), loads the weights and wraps
it as sbi wraps a freshly trained one (:func:`make_posterior`): a ``DirectPosterior`` for NPE (samples outside
the prior's support rejected), an ``MCMCPosterior`` on the likelihood or ratio potential for NLE and NRE
(vectorised slice sampling, :data:`MCMC_SETTINGS`). :func:`sample_posterior` draws seeded samples: the same
seed gives the same samples in any process.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools.sbi._priors import PriorSpec, build_prior
from physagent.tools.sbi._simulators import CUSTOM, SIMULATOR_FILE, SandboxSimulator, SimulatorOptions
from physagent.tools.sbi._task import Task, make_task

__all__ = ["CARD_FILE", "CURVE_FILE", "MAX_SAMPLING_S", "MCMC_SETTINGS", "POSTERIOR_FILE", "SIMULATIONS_FILE",
           "LoadedPosterior", "Network", "PosteriorRef", "load_posterior", "log_potential", "make_posterior",
           "prior_is_task_prior", "read_npz", "rebuild_estimator", "sample_posterior", "seeded", "write_npz"]

PosteriorRef = Annotated[str, Accepts(("posterior",)), Field(pattern=ARTIFACT_ID_PATTERN)]

POSTERIOR_FILE = "posterior.pt"
CARD_FILE = "card.json"
SIMULATIONS_FILE = "simulations.npz"
CURVE_FILE = "training_curve.png"
#: Slice sampling for NLE and NRE: 100 vectorised chains started by resampling 1000 prior draws each by their
#: potential, 50 warm-up steps, no thinning (10⁴ samples: 100 steps per chain; ~10 s on one core, 2-d).
MCMC_SETTINGS: dict[str, Any] = {"method": "slice_np_vectorized", "num_chains": 100, "warmup_steps": 50, "thin": 1,
                                 "init_strategy": "resample",
                                 "init_strategy_parameters": {"num_candidate_samples": 1000}}
MAX_SAMPLING_S = 300.0  # NPE: stop rejecting samples outside the prior after this long


@dataclass(frozen=True)
class Network:
    """The sbi network of a posterior: method, estimator type and optional MLP embedding of x."""

    method: str  # NPE | NLE | NRE
    estimator: str  # maf | nsf | mdn (NPE, NLE); resnet | mlp (NRE)
    embedding: str = "none"  # none | mlp
    embedding_dim: int = 10

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "estimator": self.estimator, "embedding": self.embedding,
                "embedding_dim": self.embedding_dim, "hidden_features": 50, "num_transforms": 5}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Network:
        return cls(data["method"], data["estimator"], data.get("embedding", "none"), data.get("embedding_dim", 10))

    def builder(self, x_dim: int) -> Callable[..., Any]:
        """sbi's builder ``(batch_theta, batch_x) → network`` (sbi's default widths: 50 hidden, 5 transforms)."""
        from sbi.neural_nets import classifier_nn, likelihood_nn, posterior_nn
        from sbi.neural_nets.embedding_nets import FCEmbedding
        from torch import nn

        embedding = FCEmbedding(x_dim, self.embedding_dim) if self.embedding == "mlp" else nn.Identity()
        if self.method == "NPE":
            return posterior_nn(model=self.estimator, embedding_net=embedding)
        if self.method == "NLE":
            return likelihood_nn(model=self.estimator)
        return classifier_nn(model=self.estimator, embedding_net_x=embedding)


def make_posterior(network: Network, estimator: Any, prior: Any) -> Any:
    """The sbi posterior of a trained network (see the module docstring)."""
    from sbi.inference import (
        DirectPosterior,
        MCMCPosterior,
        likelihood_estimator_based_potential,
        ratio_estimator_based_potential,
    )

    estimator.eval()
    if network.method == "NPE":
        return DirectPosterior(posterior_estimator=estimator, prior=prior)
    potential = likelihood_estimator_based_potential if network.method == "NLE" else ratio_estimator_based_potential
    potential_fn, transform = potential(estimator, prior, x_o=None)
    return MCMCPosterior(potential_fn, proposal=prior, theta_transform=transform, **MCMC_SETTINGS)


@dataclass
class LoadedPosterior:
    """A posterior artifact made usable: the sbi posterior, its prior, method and simulator."""

    artifact: Artifact
    posterior: Any  # the sbi NeuralPosterior: .sample((n,), x=...), .log_prob, .potential
    prior: Any  # torch distribution it was trained with
    method: str  # "NPE" | "NLE" | "NRE"
    task: Task  # the simulator, rebuilt from the card (task name + options, or the user-code simulator)
    parameter_names: list[str]
    card: dict[str, Any]


def load_posterior(ctx: ToolContext, posterior_id: str, param: str = "posterior") -> LoadedPosterior:
    """Rebuild the posterior artifact ``posterior_id`` (an argument of ``ctx.tool`` named ``param``).

    Raises:
        ToolInputError: not a posterior artifact.
        ToolRuntimeError: its files are missing or unreadable, or its task can no longer be made.
    """
    import torch

    artifact = ctx.artifact(posterior_id, param)
    if artifact.kind != "posterior":
        raise ToolInputError.for_param(ctx.tool, param, posterior_id, f"is a {artifact.kind} artifact, not a "
                                       "posterior. Train one with sbi_train.")
    directory = artifact.directory
    try:
        card = json.loads((directory / CARD_FILE).read_text())
        simulations = read_npz(directory / SIMULATIONS_FILE)
        state = torch.load(directory / POSTERIOR_FILE, weights_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ToolRuntimeError(f"{ctx.tool}: posterior {posterior_id} cannot be read ({type(exc).__name__}: "
                               f"{exc}). Train it again with sbi_train.") from exc
    task = _task_of(ctx, card, directory)
    prior = build_prior([PriorSpec(**s) for s in card["prior"]["spec"]]) if card["prior"]["source"] == "given" \
        else task.prior()
    network = Network.from_dict(card["network"])
    estimator = rebuild_estimator(network, simulations["theta"], simulations["x"], state)
    return LoadedPosterior(artifact=artifact, posterior=make_posterior(network, estimator, prior), prior=prior,
                           method=network.method, task=task, parameter_names=[p["name"] for p in card["parameters"]],
                           card=card)


def rebuild_estimator(network: Network, theta: np.ndarray, x: np.ndarray, state: dict[str, Any]) -> Any:
    """The trained network: built by sbi's builder on (up to 200 of) the stored simulations, weights loaded."""
    import torch

    with torch.random.fork_rng():  # the builder initialises weights it is about to overwrite
        torch.manual_seed(0)
        build = network.builder(x.shape[1])
        estimator = build(torch.as_tensor(theta[:200], dtype=torch.float32),
                          torch.as_tensor(x[:200], dtype=torch.float32))
    estimator.load_state_dict(state)
    return estimator.eval()


def _task_of(ctx: ToolContext, card: dict[str, Any], directory: Path) -> Task:
    name, options = card["task"]["name"], card["task"]["options"]
    if name == CUSTOM:
        workdir = ctx.staging / "sbi-simulator"
        workdir.mkdir(exist_ok=True)
        return SandboxSimulator(ctx.tool, (directory / SIMULATOR_FILE).read_text(),
                                [PriorSpec(**s) for s in card["prior"]["spec"]], card["observables"],
                                SimulatorOptions(ctx.tool, options), workdir, ctx.cancel_event)
    try:
        return make_task(name, **options)
    except (KeyError, TypeError, ValueError, ToolInputError) as exc:
        raise ToolRuntimeError(f"{ctx.tool}: the task {name!r} of this posterior cannot be made any more "
                               f"({exc}). Train a new posterior with sbi_train.") from exc


def prior_is_task_prior(loaded: LoadedPosterior) -> bool:
    """Whether the posterior was trained with its task's own prior, so the task's reference posterior applies
    (always for a user simulator: its prior is the one given with it)."""
    return loaded.card["prior"]["source"] == "task" or loaded.card["task"]["name"] == CUSTOM


def sample_posterior(loaded: LoadedPosterior, x_o: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` samples (n, d) float64 of p(θ | x_o); the same seed gives the same samples in any process.

    Raises:
        ToolRuntimeError: NPE's samples fall outside the prior so often that rejection takes too long.
    """
    import torch

    from physagent.tools.tag._runtime import torch_threads

    x = torch.as_tensor(np.asarray(x_o, dtype=np.float64).reshape(1, -1), dtype=torch.float32)
    options: dict[str, Any] = {"max_sampling_time": MAX_SAMPLING_S} if loaded.method == "NPE" else {}
    with torch_threads(), seeded(seed):
        try:
            samples = loaded.posterior.sample((n,), x=x, show_progress_bars=False, **options)
        except RuntimeError as exc:
            raise ToolRuntimeError(f"sampling posterior {loaded.artifact.id} failed: {exc}. The network puts most "
                                   "of its mass outside the prior for this x: check that x is in the range of the "
                                   "simulations, or retrain with more simulations.") from exc
    return samples.detach().double().numpy()


def log_potential(loaded: LoadedPosterior, theta: np.ndarray, x_o: np.ndarray) -> np.ndarray:
    """The unnormalised log posterior (sbi's potential) of each row of θ given x_o."""
    import torch

    from physagent.tools.tag._runtime import torch_threads

    x = torch.as_tensor(np.asarray(x_o, dtype=np.float64).reshape(1, -1), dtype=torch.float32)
    with torch_threads(), torch.no_grad():
        values = loaded.posterior.potential(torch.as_tensor(theta, dtype=torch.float32), x=x)
    return values.detach().double().numpy().reshape(-1)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's and numpy's global generators seeded with ``seed`` inside, restored after (sbi's slice sampler
    draws from ``numpy.random``)."""
    import torch

    state = np.random.get_state()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` readable by ``numpy.load``, with fixed zip timestamps: identical arrays, identical bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
