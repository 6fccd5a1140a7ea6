r"""``sbi_posterior``: sample a trained posterior at one observation and summarise it.

For x_o (given, a stored observation of the task, or simulated at a θ — :mod:`tools.sbi._observations`) it
draws ``num_samples`` seeded samples of p(θ | x_o) (:func:`tools.sbi._artifact.sample_posterior`) and reports
per parameter: mean, standard deviation, median, the MAP estimate (the sample with the highest unnormalised
posterior density, sbi's ``potential``), the central credible interval at ``credible_level`` and at 95 %
(quantiles (1 ∓ level)/2), and θ_true with whether each interval contains it.

Comparisons, where the task has them (and the posterior was trained with the task's own prior):

- ``c2st_vs_reference``: classifier two-sample test accuracy between min(num_samples, 2000) posterior samples
  and as many samples of the task's reference posterior (:func:`tools.sbi._c2st.c2st`; 0.5 = indistinguishable,
  1 = disjoint; Lopez-Paz & Oquab, arXiv:1610.06545; as in Lueckmann et al., arXiv:2101.04653);
- ``likelihood_interval_*``: the task's profile-likelihood interval at ``credible_level`` beside the
  posterior's credible interval (e.g. μ of ``signal_strength``).

Output: a ``table`` artifact ``samples.parquet`` (one column per parameter) and a ``plot`` artifact
``corner.png`` (:mod:`tools.sbi._corner`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._registry import ToolResult, tool
from physagent.tools.sbi._artifact import (
    LoadedPosterior,
    PosteriorRef,
    load_posterior,
    log_potential,
    prior_is_task_prior,
    sample_posterior,
)
from physagent.tools.sbi._observations import ResolvedObservation, resolve_observation
from physagent.tools.sbi._task import N_OBSERVATIONS

__all__ = ["ParameterSummary", "PosteriorSummary", "sbi_posterior"]

TOOL = "sbi_posterior"
MAX_C2ST_SAMPLES = 2_000  # sbibm's MLP C2ST takes minutes per 10⁴ samples on 2 cores


class ParameterSummary(BaseModel):
    """The marginal posterior of one parameter."""

    name: str = Field(description="Parameter name.")
    unit: str = Field(description="Unit of every number of this row ('' if dimensionless).")
    mean: float = Field(description="Posterior mean.")
    std: float = Field(description="Posterior standard deviation.")
    median: float = Field(description="Posterior median.")
    map: float = Field(description="This parameter of the MAP sample (highest posterior density among the samples).")
    interval_low: float = Field(description="Lower edge of the central credible interval at credible_level.")
    interval_high: float = Field(description="Upper edge of the central credible interval at credible_level.")
    interval_95_low: float = Field(description="Lower edge of the central 95 % credible interval.")
    interval_95_high: float = Field(description="Upper edge of the central 95 % credible interval.")
    theta_true: float | None = Field(description="True value, when the observation was simulated (else None).")
    true_inside: bool | None = Field(description="Whether theta_true lies in the credible_level interval.")
    true_inside_95: bool | None = Field(description="Whether theta_true lies in the 95 % interval.")
    likelihood_interval_low: float | None = Field(
        default=None, description="Lower edge of the task's profile-likelihood interval at credible_level, if any.")
    likelihood_interval_high: float | None = Field(
        default=None, description="Upper edge of the task's profile-likelihood interval at credible_level, if any.")


class PosteriorSummary(ToolResult):
    """Posterior samples at one observation, their per-parameter summary and comparisons."""

    samples: Artifact = Field(description="Table artifact samples.parquet: one row per sample, one column per "
                                          "parameter.")
    corner: Artifact = Field(description="Plot artifact corner.png: marginals and pairwise histograms, credible "
                                         "intervals shaded, θ_true in red.")
    posterior: str = Field(description="Id of the posterior artifact sampled.")
    method: str = Field(description="NPE, NLE or NRE.")
    task: str = Field(description="The posterior's simulator (task name or 'custom').")
    observation_label: str = Field(description="Which x_o: 'observation 3 of two_moons', 'simulated at …' or "
                                               "'given x'.")
    x_o: list[float] = Field(description="The observation conditioned on, in the order of the observables.")
    num_samples: int = Field(description="Samples drawn.")
    credible_level: float = Field(description="Probability content of the interval_low/high intervals.")
    parameters: dict[str, ParameterSummary] = Field(description=(
        "One row per parameter, keyed by its name (e.g. parameters.mu.median), with units."))
    c2st_vs_reference: float | None = Field(description=(
        "Classifier two-sample test accuracy against the task's reference posterior (0.5: indistinguishable; "
        "None when the task has none or the prior was replaced)."))
    c2st_samples: int | None = Field(description="Samples per side used for the C2ST.")
    sample_wall_s: float = Field(description="Wall time of drawing the samples in seconds.")
    notes: list[str] = Field(description="What to know about these numbers.")


@tool(category="sbi", version="1")
def sbi_posterior(
    posterior: Annotated[PosteriorRef, Field(description="Id of a posterior artifact from sbi_train.")],
    observation: Annotated[list[float] | None, Field(description=(
        "x_o to condition on, one number per observable in order. Give at most one of observation, "
        "observation_number, observe_at; none means observation_number=1."))] = None,
    observation_number: Annotated[int | None, Field(ge=1, le=N_OBSERVATIONS, description=(
        f"Stored observation 1 … {N_OBSERVATIONS} of the task (its θ_true is known)."))] = None,
    observe_at: Annotated[list[float] | None, Field(description=(
        "θ (one value per parameter, in order and in the parameters' units) at which to simulate x_o with seed."))
    ] = None,
    num_samples: Annotated[int, Field(ge=100, le=1_000_000, description="Posterior samples to draw.")] = 10_000,
    credible_level: Annotated[float, Field(ge=0.5, le=0.999, description=(
        "Probability of the central credible interval (the 95 % interval is always reported too)."))] = 0.68,
    seed: Annotated[int, Field(description="Random seed of the samples (and of observe_at's simulation).")] = 0,
    *,
    ctx: ToolContext,
) -> PosteriorSummary:
    """Sample a trained SBI posterior at one observation: credible intervals, MAP and a corner plot.

    Returns per-parameter mean, std, median, MAP and credible intervals (with θ_true when known), the
    samples as a table, a corner plot, and the C2ST against the task's reference posterior where one exists.
    """
    loaded = load_posterior(ctx, posterior)
    resolved = resolve_observation(TOOL, loaded, observation, observation_number, observe_at, seed)
    started = time.perf_counter()
    with ctx.progress(f"sampling the {loaded.method} posterior", total=num_samples, unit="samples") as bar:
        samples = sample_posterior(loaded, resolved.x, num_samples, seed)
        bar.advance(num_samples)
    wall_s = time.perf_counter() - started
    notes: list[str] = []
    map_theta = samples[int(np.argmax(log_potential(loaded, samples, resolved.x)))]
    intervals = _likelihood_intervals(loaded, resolved, credible_level, notes)
    rows = _rows(loaded, samples, map_theta, credible_level, resolved.theta_true, intervals)
    c2st, n_c2st = _c2st(ctx, loaded, resolved, samples, seed, notes)
    table = _write_samples(ctx, loaded, resolved, samples, seed)
    corner = _write_corner(ctx, loaded, resolved, samples, credible_level)
    return PosteriorSummary(
        samples=table, corner=corner, posterior=posterior, method=loaded.method, task=loaded.task.name,
        observation_label=resolved.label, x_o=[float(v) for v in resolved.x], num_samples=num_samples,
        credible_level=credible_level, parameters={row.name: row for row in rows}, c2st_vs_reference=c2st,
        c2st_samples=n_c2st, sample_wall_s=round(wall_s, 3), notes=notes)


def _rows(loaded: LoadedPosterior, samples: np.ndarray, map_theta: np.ndarray, level: float,
          theta_true: np.ndarray | None, likelihood: dict[str, tuple[float, float]]) -> list[ParameterSummary]:
    rows = []
    for i, parameter in enumerate(loaded.task.parameters):
        column = samples[:, i]
        low, median, high, low95, high95 = np.quantile(column, [(1 - level) / 2, 0.5, (1 + level) / 2, 0.025, 0.975])
        true = None if theta_true is None else float(theta_true[i])
        lik = likelihood.get(parameter.name)
        rows.append(ParameterSummary(
            name=parameter.name, unit=parameter.unit, mean=float(column.mean()), std=float(column.std(ddof=1)),
            median=float(median), map=float(map_theta[i]), interval_low=float(low), interval_high=float(high),
            interval_95_low=float(low95), interval_95_high=float(high95), theta_true=true,
            true_inside=None if true is None else bool(low <= true <= high),
            true_inside_95=None if true is None else bool(low95 <= true <= high95),
            likelihood_interval_low=None if lik is None else float(lik[0]),
            likelihood_interval_high=None if lik is None else float(lik[1])))
    return rows


def _likelihood_intervals(loaded: LoadedPosterior, resolved: ResolvedObservation, level: float,
                          notes: list[str]) -> dict[str, tuple[float, float]]:
    found = loaded.task.likelihood_intervals(resolved.x, level)
    if found:
        notes.append(f"likelihood_interval_*: the task's profile-likelihood interval at {level:g} confidence "
                     f"for {', '.join(found)} (frequentist), beside the posterior's credible interval.")
    return dict(found or {})


def _c2st(ctx: ToolContext, loaded: LoadedPosterior, resolved: ResolvedObservation, samples: np.ndarray,
          seed: int, notes: list[str]) -> tuple[float | None, int | None]:
    if not prior_is_task_prior(loaded):
        notes.append("The prior was replaced, so the task's reference posterior does not apply: no C2ST.")
        return None, None
    n = min(len(samples), MAX_C2ST_SAMPLES)
    with ctx.progress("reference posterior and C2ST", total=2, unit="steps") as bar:
        reference = loaded.task.reference_posterior(resolved.x, n, seed)
        bar.advance()
        if reference is None:
            return None, None
        from physagent.tools.sbi._c2st import c2st
        from physagent.tools.tag._runtime import torch_threads

        with torch_threads():  # sklearn's MLP on BLAS threads: as many as the tools may use
            accuracy = float(c2st(np.asarray(reference, dtype=np.float64), samples[:n], seed=seed))
        bar.advance()
    notes.append(f"c2st_vs_reference: {accuracy:.3f} on {n:,} samples per side (0.5 = matches the reference "
                 "posterior; above ~0.6 is a visible mismatch).")
    return accuracy, n


def _labels(loaded: LoadedPosterior) -> list[str]:
    return [f"{p.name} [{p.unit}]" if p.unit else p.name for p in loaded.task.parameters]


def _write_samples(ctx: ToolContext, loaded: LoadedPosterior, resolved: ResolvedObservation, samples: np.ndarray,
                   seed: int) -> Artifact:
    import awkward as ak

    from physagent.tools._io import write_parquet

    pending = ctx.new_artifact("table")
    columns = {name: samples[:, i] for i, name in enumerate(loaded.parameter_names)}
    write_parquet(ak.zip(columns, depth_limit=1), pending.directory / "samples.parquet")
    meta = _meta(loaded, resolved) | {"seed": seed, "n_rows": len(samples), "fields": loaded.parameter_names,
                                      "units": {p.name: p.unit for p in loaded.task.parameters}}
    return pending.finish("samples.parquet", f"{len(samples):,} {loaded.method} posterior samples of "
                          f"{', '.join(loaded.parameter_names)} at {resolved.label} (from {loaded.artifact.id}, "
                          f"seed {seed})", meta)


def _write_corner(ctx: ToolContext, loaded: LoadedPosterior, resolved: ResolvedObservation, samples: np.ndarray,
                  level: float) -> Artifact:
    from physagent.tools.sbi._corner import corner_figure
    from physagent.tools.tag._metrics import save_png

    pending = ctx.new_artifact("plot")
    title = f"{loaded.method} posterior ({loaded.task.name}), {resolved.label}; shaded: {level:.0%}, dashed: 95 %"
    save_png(corner_figure(samples, _labels(loaded), level, resolved.theta_true, title),
             pending.directory / "corner.png")
    return pending.finish("corner.png", f"corner plot of the {loaded.method} posterior {loaded.artifact.id} at "
                          f"{resolved.label}", _meta(loaded, resolved))


def _meta(loaded: LoadedPosterior, resolved: ResolvedObservation) -> dict[str, Any]:
    return {"posterior": loaded.artifact.id, "observation": resolved.label, "x_o": [float(v) for v in resolved.x],
            "theta_true": None if resolved.theta_true is None else [float(v) for v in resolved.theta_true]}
