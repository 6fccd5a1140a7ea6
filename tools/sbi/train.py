r"""``sbi_train``: train an amortized neural posterior with the ``sbi`` package on a task's simulations.

Methods (sbi 0.27; one round, simulations from the prior):

- ``NPE`` — neural posterior estimation (sbi's NPE-C / APT, Greenberg et al., arXiv:1905.07488): a conditional
  normalizing flow q(θ | x) (MAF, arXiv:1705.07057; NSF, arXiv:1906.04032; or a mixture density network).
  Sampling is direct; samples outside the prior's support are rejected.
- ``NLE`` — neural likelihood estimation (Papamakarios et al., arXiv:1805.07226): a flow q(x | θ); the
  posterior ∝ q(x_o | θ) p(θ) is sampled by slice-sampling MCMC.
- ``NRE`` — neural ratio estimation (NRE-B, Durkan et al., arXiv:2002.03712): a classifier (residual network or
  MLP) of r(θ, x) = p(x | θ) / p(x); the posterior ∝ r(θ, x_o) p(θ) by MCMC.

Simulators: the registered tasks of :mod:`tools.sbi.tasks` (``task_options`` go to the task's factory) or,
with ``task="custom"``, the user's ``simulate(theta, rng)`` run in the sandbox (:mod:`tools.sbi._simulators`),
with a ``prior`` given per parameter (:mod:`tools.sbi._priors`). θ is drawn from the prior with ``seed``; rows
that could not be simulated (NaN or ±inf in x) are dropped and counted, and the call is refused when more than
half fail. Training is sbi's ``append_simulations(θ, x).train(...)`` (Adam, early stopping after 20 epochs
without a better validation loss, best weights kept), seeded and on :func:`tools.tag._runtime.torch_threads`
threads, with one progress step per epoch.

Output: a ``posterior`` artifact (:mod:`tools.sbi._artifact`) for ``sbi_posterior`` and ``sbi_diagnostics``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.sbi._artifact import (
    CARD_FILE,
    CURVE_FILE,
    MCMC_SETTINGS,
    POSTERIOR_FILE,
    SIMULATIONS_FILE,
    Network,
    seeded,
    write_npz,
)
from physagent.tools.sbi._priors import PriorSpec, build_prior, check_override, describe_prior, spec_dicts
from physagent.tools.sbi._simulators import CUSTOM, SIMULATOR_FILE, SandboxSimulator, SimulatorOptions
from physagent.tools.sbi._task import Task, make_task, task_names

__all__ = ["TrainedPosterior", "sbi_train"]

TOOL = "sbi_train"
TASK_NAMES: tuple[str, ...] = (*task_names(), CUSTOM)
TaskName = Literal[TASK_NAMES]  # type: ignore[valid-type]  # the registered tasks, known at import time
Method = Literal["NPE", "NLE", "NRE"]
Estimator = Literal["auto", "maf", "nsf", "mdn", "resnet", "mlp"]
OptionValue = bool | int | float | str | list[float]
STOP_AFTER_EPOCHS = 20  # sbi's default patience
_FLOWS, _CLASSIFIERS = ("maf", "nsf", "mdn"), ("resnet", "mlp")


class TrainedPosterior(ToolResult):
    """A trained neural posterior and how its simulations and training went."""

    posterior: Artifact = Field(description="The posterior artifact (kind 'posterior'): posterior.pt, card.json, "
                                            "simulations.npz, training_curve.png. Pass its id to sbi_posterior or "
                                            "sbi_diagnostics.")
    method: str = Field(description="NPE, NLE or NRE.")
    task: str = Field(description="The simulator: a registered task name, or 'custom' (user code).")
    parameter_names: list[str] = Field(description="Names of the inferred parameters θ, in order.")
    parameter_units: list[str] = Field(description="Unit of each parameter ('' if dimensionless).")
    observables: list[str] = Field(description="Names of the k entries of x, in order (the length an observation "
                                               "must have).")
    num_simulations_used: int = Field(description="Simulations trained on (valid rows of x).")
    n_failed_simulations: int = Field(description="Simulations dropped because x had NaN or ±inf.")
    epochs_trained: int = Field(description="Training epochs run (early stopping after 20 without improvement).")
    converged: bool = Field(description="True if early stopping ended training before max_epochs.")
    best_validation_log_prob: float = Field(description="Minus the best validation loss: mean log q(θ|x) (NPE) or "
                                                        "log q(x|θ) (NLE) in nats per simulation, or minus the "
                                                        "classifier's cross-entropy (NRE). Higher is better.")
    simulate_wall_s: float = Field(description="Wall time of the simulations in seconds.")
    train_wall_s: float = Field(description="Wall time of the training in seconds.")
    warnings: list[str] = Field(description="Warnings from sbi during training (e.g. about z-scoring), if any.")


@tool(category="sbi", version="1")
def sbi_train(
    task: Annotated[TaskName, Field(description=(
        "Simulator: two_moons, gaussian_linear, slcp (benchmarks with reference posteriors), signal_strength "
        "(binned signal strength mu, background nu), pythia_alphas (Pythia8 shower alpha_s), custom "
        "(simulator_code)."))],
    task_options: Annotated[dict[str, OptionValue] | None, Field(description=(
        "Task options, e.g. {'events_per_simulation': 200} (pythia_alphas); custom: {'batch_size': 1000, "
        "'timeout_s': 120} per sandbox run."))] = None,
    method: Annotated[Method, Field(description=(
        "NPE (posterior estimation, direct sampling), NLE (likelihood) or NRE (ratio classifier), both sampled "
        "by MCMC."))] = "NPE",
    num_simulations: Annotated[int, Field(ge=50, le=1_000_000, description=(
        "Simulations drawn from the prior to train on."))] = 1000,
    prior: Annotated[list[PriorSpec] | None, Field(max_length=64, description=(
        "Prior per parameter, in order, e.g. [{'name': 'mu', 'distribution': 'uniform', 'low': 0, 'high': 3, "
        "'unit': ''}] (or gaussian with mean, std). Required for custom; for a task it replaces the task's prior "
        "and must name its parameters."))] = None,
    simulator_code: Annotated[str | None, Field(min_length=1, max_length=100_000, description=(
        "custom only: Python defining simulate(theta, rng) returning x (n, k) for theta (n, d) in the prior's "
        "order, rng a numpy Generator; NaN rows for failures. Runs sandboxed."))
    ] = None,
    observables: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]] | None, Field(
        max_length=10_000, description="task='custom' only: names of the k entries of x (default x_1 … x_k).")
    ] = None,
    density_estimator: Annotated[Estimator, Field(description=(
        "maf, nsf or mdn (NPE, NLE); resnet or mlp (NRE); auto: maf, or resnet for NRE."))] = "auto",
    embedding: Annotated[Literal["none", "mlp"], Field(description=(
        "none, or mlp: a 2-layer MLP embedding of x to embedding_dim features, for high-dimensional x (NPE, "
        "NRE)."))] = "none",
    embedding_dim: Annotated[int, Field(ge=1, le=256, description="Output features of the mlp embedding.")] = 10,
    max_epochs: Annotated[int, Field(ge=1, le=10_000, description=(
        "Most training epochs (training stops earlier after 20 epochs without a better validation loss)."))] = 300,
    training_batch_size: Annotated[int, Field(ge=8, le=100_000, description=(
        "Simulations per optimisation step (sbi's default 200)."))] = 200,
    learning_rate: Annotated[float, Field(gt=0, le=0.1, description="Adam learning rate (sbi's default 5e-4).")
                             ] = 5e-4,
    validation_fraction: Annotated[float, Field(ge=0.05, le=0.5, description=(
        "Share of simulations held out for early stopping (sbi's default 0.1)."))] = 0.1,
    seed: Annotated[int, Field(description="Random seed of θ, the simulations and the training; same seed, same "
                                           "posterior.")] = 0,
    *,
    ctx: ToolContext,
) -> TrainedPosterior:
    """Train a neural posterior (NPE, NLE or NRE with sbi) on simulations of a task or of your own simulator code.

    Draws num_simulations parameter sets from the prior, simulates them (dropping failed rows), trains the
    network and returns a posterior artifact for sbi_posterior and sbi_diagnostics.
    """
    network = _network(method, density_estimator, embedding, embedding_dim)
    setup = _setup(ctx, task, task_options or {}, prior, simulator_code, observables)
    theta, x, simulate_wall_s = _simulate(ctx, setup, num_simulations, seed)
    valid = _valid_rows(setup, x)
    settings = {"max_epochs": max_epochs, "training_batch_size": training_batch_size,
                "learning_rate": learning_rate, "validation_fraction": validation_fraction,
                "stop_after_epochs": STOP_AFTER_EPOCHS, "seed": _derived(seed, "train")}
    fitted = _train(ctx, network, setup.prior, theta[valid], x[valid], settings)
    artifact = _write(ctx, setup, network, theta, x, valid, fitted, settings, seed, simulate_wall_s)
    task_ = setup.task
    return TrainedPosterior(
        posterior=artifact, method=method, task=task, parameter_names=[p.name for p in task_.parameters],
        parameter_units=[p.unit for p in task_.parameters], observables=list(task_.observables),
        num_simulations_used=int(valid.sum()), n_failed_simulations=int((~valid).sum()),
        epochs_trained=fitted.epochs, converged=fitted.converged, best_validation_log_prob=-fitted.best_loss,
        simulate_wall_s=round(simulate_wall_s, 3), train_wall_s=round(fitted.wall_s, 3), warnings=fitted.warnings)


# --- inputs --------------------------------------------------------------------------------------


def _network(method: str, estimator: str, embedding: str, embedding_dim: int) -> Network:
    chosen = ("resnet" if method == "NRE" else "maf") if estimator == "auto" else estimator
    allowed = _CLASSIFIERS if method == "NRE" else _FLOWS
    if chosen not in allowed:
        kind = "a classifier" if method == "NRE" else "a density estimator"
        raise ToolInputError.for_param(TOOL, "density_estimator", estimator, f"is not {kind} for {method}; use "
                                       f"{', '.join(allowed)} (or auto).")
    if embedding != "none" and method == "NLE":
        raise ToolInputError.for_param(TOOL, "embedding", embedding, "does not apply to NLE, which models the "
                                       "density of x itself. Use embedding='none', or NPE or NRE.")
    return Network(method, chosen, embedding, embedding_dim)


@dataclass
class _Setup:
    """The simulator and prior of a training run."""

    task: Task
    prior: Any
    prior_source: str  # "task" | "given"
    specs: list[PriorSpec] | None
    code: str | None = None


def _setup(ctx: ToolContext, name: str, options: dict[str, Any], prior: list[PriorSpec] | None,
           code: str | None, observables: list[str] | None) -> _Setup:
    _check_unique(prior)
    if name == CUSTOM:
        if code is None or not prior:
            missing = " and ".join(n for n, v in (("simulator_code", code), ("prior", prior)) if not v)
            raise ToolInputError.for_param(TOOL, "task", name, f"needs {missing}: simulator_code defining "
                                           "simulate(theta, rng), and prior with one entry per parameter.")
        workdir = ctx.staging / "sbi-simulator"
        workdir.mkdir()
        simulator = SandboxSimulator(TOOL, code, prior, observables, SimulatorOptions(TOOL, options), workdir,
                                     ctx.cancel_event)
        return _Setup(simulator, build_prior(prior), "given", prior, code)
    for param, value in (("simulator_code", code), ("observables", observables)):
        if value is not None:
            raise ToolInputError.for_param(TOOL, param, "…" if param == "simulator_code" else value,
                                           f"is only for task='custom'; task {name!r} has its own simulator. Leave "
                                           f"{param} out, or use task='custom'.")
    task = _make(name, options)
    if prior is None:
        return _Setup(task, task.prior(), "task", None)
    check_override(TOOL, prior, task)
    return _Setup(task, build_prior(prior), "given", prior)


def _check_unique(prior: list[PriorSpec] | None) -> None:
    names = [spec.name for spec in prior or []]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ToolInputError.for_param(TOOL, "prior", names, f"names {', '.join(repeated)} more than once; give "
                                       "each parameter once.")


def _make(name: str, options: dict[str, Any]) -> Task:
    try:
        return make_task(name, **options)
    except (TypeError, ValueError, ToolInputError) as exc:
        raise ToolInputError.for_param(TOOL, "task_options", options, f"is not accepted by task {name!r}: {exc}"
                                       ) from None


# --- simulations ----------------------------------------------------------------------------------


def _derived(seed: int, purpose: str) -> int:
    """A seed for one purpose of a run, derived from the call's seed (stable across Python versions)."""
    return int.from_bytes(hashlib.sha256(f"sbi_train/{seed}/{purpose}".encode()).digest()[:4], "little")


def _simulate(ctx: ToolContext, setup: _Setup, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """θ (n, d) from the prior and x (n, k) from the task, with a progress bar over simulations."""
    with seeded(seed):
        theta = setup.prior.sample((n,)).detach().double().numpy()
    started = time.perf_counter()
    with ctx.progress(f"simulating {setup.task.name}", total=n, unit="simulations") as bar:
        def progress(done: int) -> None:
            bar.advance(max(0, done - bar.completed))

        x = np.asarray(setup.task.simulate(theta, _derived(seed, "simulate"), progress), dtype=np.float64)
        progress(n)
    if x.ndim == 1 and len(setup.task.observables) == 1:
        x = x.reshape(-1, 1)
    if x.shape != (n, len(setup.task.observables)):
        raise ToolRuntimeError(f"{TOOL}: task {setup.task.name!r} returned x of shape {x.shape} for {n} "
                               f"simulations; expected ({n}, {len(setup.task.observables)}). This is a bug in the "
                               "task; please report it.")
    return theta, x, time.perf_counter() - started


def _valid_rows(setup: _Setup, x: np.ndarray) -> np.ndarray:
    """Rows whose x is finite (also in float32, what sbi trains on); refuses when more than half failed."""
    with np.errstate(over="ignore"):
        valid = np.all(np.isfinite(x.astype(np.float32)), axis=1)
    n_failed = int((~valid).sum())
    if n_failed * 2 <= len(x):
        return valid
    what = f"{n_failed:,} of {len(x):,} simulations returned NaN or ±inf"
    if setup.code is not None:
        raise ToolInputError(f"{TOOL}: {what}; more than half failed, so no posterior was trained. Check that "
                             "simulate(theta, rng) returns finite numbers over the whole prior.",
                             tool=TOOL, param="simulator_code")
    if setup.prior_source == "given":
        raise ToolInputError.for_param(TOOL, "prior", spec_dicts(setup.specs or []), f"lets {what} of task "
                                       f"{setup.task.name!r}; more than half failed. Keep the prior inside the "
                                       "range the simulator accepts, or leave prior out.")
    raise ToolRuntimeError(f"{TOOL}: {what} of task {setup.task.name!r}; more than half failed, so no posterior "
                           "was trained. Try another seed or other task_options.")


# --- training --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fitted:
    estimator: Any
    history: list[dict[str, Any]]
    epochs: int
    best_loss: float
    converged: bool
    wall_s: float
    epoch_wall_s: list[float]
    threads: int
    warnings: list[str]


class _NullTracker:
    """sbi's tracker protocol, recording nothing (sbi's default writes TensorBoard logs into the working dir)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_params(self, params: dict[str, Any]) -> None: ...

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None: ...

    def flush(self) -> None: ...


def _hooked(base: type) -> type:
    """``base`` (an sbi trainer) calling ``on_epoch(epoch, train_loss, val_loss)`` after each epoch, and
    recording whether early stopping ended training instead of printing it (sbi 0.27 has no epoch callback;
    ``_summarize_epoch`` runs once per epoch)."""

    class Hooked(base):  # type: ignore[valid-type, misc]
        on_epoch: Callable[[int, float, float], None] = staticmethod(lambda *args: None)
        converged = False

        def _summarize_epoch(self, train_loss: float, val_loss: float, epoch_start_time: float,
                             summarization_kwargs: dict[str, Any]) -> None:
            super()._summarize_epoch(train_loss, val_loss, epoch_start_time, summarization_kwargs)
            self.on_epoch(len(self._summary["validation_loss"]), train_loss, val_loss)

        def _report_convergence_at_end(self, epoch: int, max_num_epochs: int) -> None:
            self.converged = epoch <= max_num_epochs

    Hooked.__name__ = Hooked.__qualname__ = base.__name__
    return Hooked


def _train(ctx: ToolContext, network: Network, prior: Any, theta: np.ndarray, x: np.ndarray,
           settings: dict[str, Any]) -> _Fitted:
    import torch
    from sbi.inference import NLE, NPE, NRE

    from physagent.tools.tag._runtime import torch_threads

    trainer = _hooked({"NPE": NPE, "NLE": NLE, "NRE": NRE}[network.method])
    started = time.perf_counter()
    with torch_threads() as threads, seeded(settings["seed"]), warnings.catch_warnings(record=True) as caught, \
            ctx.progress(f"training {network.method} ({network.estimator})", total=settings["max_epochs"],
                         unit="epochs") as bar:
        warnings.simplefilter("always")
        builder = network.builder(x.shape[1])
        key = "classifier" if network.method == "NRE" else "density_estimator"
        inference = trainer(prior=prior, tracker=_NullTracker(), show_progress_bars=False, **{key: builder})

        def on_epoch(epoch: int, train_loss: float, val_loss: float) -> None:
            bar.unit = f"epochs (validation loss {val_loss:.3f})"
            bar.advance()

        inference.on_epoch = on_epoch
        inference.append_simulations(torch.as_tensor(theta, dtype=torch.float32),
                                     torch.as_tensor(x, dtype=torch.float32))
        try:
            # sbi's loop runs epochs 0 … max_num_epochs: max_epochs - 1 gives max_epochs epochs
            estimator = inference.train(
                training_batch_size=settings["training_batch_size"], learning_rate=settings["learning_rate"],
                validation_fraction=settings["validation_fraction"], stop_after_epochs=STOP_AFTER_EPOCHS,
                max_num_epochs=settings["max_epochs"] - 1)
        except (ValueError, RuntimeError) as exc:
            raise ToolRuntimeError(f"{TOOL}: sbi could not train on these simulations: {exc}. Try more "
                                   "simulations, a smaller learning_rate or another density_estimator.") from exc
    return _fitted(inference, estimator, time.perf_counter() - started, threads, caught)


def _fitted(inference: Any, estimator: Any, wall_s: float, threads: int, caught: list[Any]) -> _Fitted:
    summary = inference.summary
    best = float(summary["best_validation_loss"][-1])
    if not math.isfinite(best):
        raise ToolRuntimeError(f"{TOOL}: training diverged (validation loss {best}). Use a smaller learning_rate, "
                               "more simulations, or another density_estimator.")
    history = [{"epoch": i + 1, "train_loss": _finite(t), "validation_loss": _finite(v)}
               for i, (t, v) in enumerate(zip(summary["training_loss"], summary["validation_loss"], strict=True))]
    messages = list(dict.fromkeys(" ".join(str(w.message).split())[:300] for w in caught))[:10]
    return _Fitted(estimator, history, len(history), best, bool(inference.converged), wall_s,
                   [round(float(s), 4) for s in summary["epoch_durations_sec"]], threads, messages)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# --- the artifact ----------------------------------------------------------------------------------


def _write(ctx: ToolContext, setup: _Setup, network: Network, theta: np.ndarray, x: np.ndarray, valid: np.ndarray,
           fitted: _Fitted, settings: dict[str, Any], seed: int, simulate_wall_s: float) -> Artifact:
    import torch

    from physagent.tools._io import write_json
    from physagent.tools.tag._metrics import save_png

    pending = ctx.new_artifact("posterior")
    directory = pending.directory
    torch.save({k: t.detach().cpu() for k, t in fitted.estimator.state_dict().items()}, directory / POSTERIOR_FILE)
    write_npz(directory / SIMULATIONS_FILE, {"theta": theta[valid], "x": x[valid], "theta_failed": theta[~valid]})
    if setup.code is not None:
        (directory / SIMULATOR_FILE).write_text(setup.code)
    card = _card(setup, network, len(theta), valid, fitted, settings, seed)
    write_json(card, directory / CARD_FILE)
    save_png(_training_curve(fitted, network.method), directory / CURVE_FILE)
    task = setup.task
    summary = (f"{network.method} ({network.estimator}) posterior of {', '.join(p.name for p in task.parameters)} "
               f"for task {task.name}, trained on {int(valid.sum()):,} simulations ({fitted.epochs} epochs)")
    timing = {"simulate_wall_s": simulate_wall_s, "train_wall_s": fitted.wall_s, "epoch_wall_s": fitted.epoch_wall_s}
    return pending.finish(POSTERIOR_FILE, summary, card | {"timing": timing})


def _card(setup: _Setup, network: Network, n: int, valid: np.ndarray, fitted: _Fitted, settings: dict[str, Any],
          seed: int) -> dict[str, Any]:
    task = setup.task
    simulator: dict[str, Any] = {"kind": "task", "description": task.description}
    if isinstance(task, SandboxSimulator):
        simulator = {"kind": "sandboxed user code", "file": SIMULATOR_FILE, "sha256": task.code_sha256,
                     "interface": "simulate(theta, rng) -> x; rng = numpy.random.default_rng([seed, batch])"}
    return {
        "method": network.method, "network": network.as_dict(),
        "task": {"name": task.name, "options": json.loads(json.dumps(task.options, default=str))},
        "simulator": simulator,
        "parameters": [{"name": p.name, "unit": p.unit, "description": p.description} for p in task.parameters],
        "observables": list(task.observables),
        "prior": {"source": setup.prior_source,
                  "spec": spec_dicts(setup.specs) if setup.specs else describe_prior(setup.prior, task.parameters)},
        "simulations": {"requested": n, "used": int(valid.sum()), "failed": int((~valid).sum()),
                        "theta_seed": seed, "simulator_seed": _derived(seed, "simulate"), "file": SIMULATIONS_FILE},
        "training": {**settings, "optimizer": "Adam", "epochs_trained": fitted.epochs, "converged": fitted.converged,
                     "best_validation_loss": fitted.best_loss, "threads": fitted.threads,
                     "loss": _loss_name(network.method), "history": fitted.history, "warnings": fitted.warnings},
        "sampling": {"NPE": "direct, samples outside the prior's support rejected"}.get(
            network.method, {"mcmc": MCMC_SETTINGS}),
        "packages": _versions(),
    }


def _loss_name(method: str) -> str:
    return {"NPE": "-log q(theta|x) per simulation", "NLE": "-log q(x|theta) per simulation",
            "NRE": "NRE-B classifier cross-entropy (10 atoms)"}[method]


def _training_curve(fitted: _Fitted, method: str) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 3.4))
    ax = figure.subplots()
    epochs = [row["epoch"] for row in fitted.history]
    ax.plot(epochs, [row["train_loss"] for row in fitted.history], label="training")
    ax.plot(epochs, [row["validation_loss"] for row in fitted.history], label="validation")
    losses = [row["validation_loss"] for row in fitted.history]
    best = 1 + int(np.nanargmin(np.array(losses, dtype=float)))
    ax.axvline(best, color="grey", ls="--", lw=0.8, label=f"kept (epoch {best})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(_loss_name(method))
    ax.set_title(f"{method} training", fontsize=9)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _versions() -> dict[str, str]:
    found = {}
    for name in ("sbi", "torch", "nflows", "zuko", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found
