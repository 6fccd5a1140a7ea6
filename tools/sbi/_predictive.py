r"""The posterior predictive check: does data simulated from the posterior look like the observation?

Draw θ⁽ʲ⁾ ~ q(θ | x_o), j = 1 … n, simulate x⁽ʲ⁾ ~ p(x | θ⁽ʲ⁾), and place each observable of x_o within the
predictive distribution: its predictive quantile is the fraction of x⁽ʲ⁾ below x_o (ties count half, for
counts). An observable with x_o outside the central 99 % (quantile < 0.005 or > 0.995) is flagged, and its
pull (x_o − median) / σ̂, σ̂ half the central 68 % width of the predictive, says how far out it is. With k
observables about 0.01 k flags happen by chance, so the check fails when the number of flags is improbable for
a model that describes x_o (binomial tail probability ≤ 1 %) or when one observable is far out (|pull| >
:data:`FAR_PULL`; a few hundred predictive draws cannot resolve tail probabilities below ~1 %, the pull can):
then the simulator does not describe the observation (model misspecification) or the posterior is far off at
x_o, and a posterior that passes SBC on simulations need not be trusted there.

Reference: Gelman, Meng, Stern, Statistica Sinica 6 (1996) 733 (posterior predictive assessment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from physagent.tools.sbi._calibration import task_progress
from physagent.tools.sbi._task import Task

__all__ = ["CENTRAL", "PredictiveCheck", "PredictiveObservable", "posterior_predictive_check"]

CENTRAL = 0.99  # an observable of x_o outside this central fraction of its predictive distribution is flagged
FAIL_PROBABILITY = 0.01  # the check fails when this many flags or more are this improbable by chance
FAR_PULL = 5.0  # … or when one observable lies this many σ̂ from the predictive median


@dataclass(frozen=True)
class PredictiveObservable:
    """One observable of x_o against its posterior predictive distribution."""

    name: str
    x_o: float
    median: float
    low: float  # the (1 − CENTRAL)/2 predictive quantile
    high: float  # the (1 + CENTRAL)/2 predictive quantile
    quantile: float  # fraction of predictive draws below x_o (ties count half)
    pull: float | None  # (x_o − median) / σ̂; None when the predictive has no spread (σ̂ = 0)
    flagged: bool


@dataclass(frozen=True)
class PredictiveCheck:
    """The posterior predictive check at one observation."""

    observables: list[PredictiveObservable]
    x_predictive: np.ndarray  # (n, k) simulated from the posterior samples; failed rows dropped
    n_failed: int
    chance_probability: float  # P(at least this many flags | the model describes x_o)
    verdict: str  # passes | fails
    detail: str


def posterior_predictive_check(task: Task, theta: np.ndarray, x_o: np.ndarray, seed: int,
                               progress: Callable[[int], None] | None = None) -> PredictiveCheck:
    """Simulate x for each posterior sample θ (n, d) and compare each observable with x_o (k,).

    Args:
        task: The task whose simulator made the training data.
        theta: Posterior samples at x_o.
        x_o: The observation.
        seed: Seed of the simulator.
        progress: Called with the number of rows simulated since its last call.

    Raises:
        ValueError: every predictive simulation failed (NaN rows).
    """
    x_pred = np.asarray(task.simulate(theta, seed, task_progress(progress)), dtype=np.float64)
    good = np.all(np.isfinite(x_pred), axis=1)
    if not good.any():
        raise ValueError(f"all {len(theta)} simulations at posterior samples failed (NaN)")
    x_pred = x_pred[good]
    rows = [_place(name, float(value), x_pred[:, j]) for j, (name, value) in
            enumerate(zip(task.observables, np.asarray(x_o, dtype=np.float64), strict=True))]
    chance, verdict, detail = _verdict(rows)
    return PredictiveCheck(rows, x_pred, int((~good).sum()), chance, verdict, detail)


def _place(name: str, value: float, draws: np.ndarray) -> PredictiveObservable:
    quantile = float((np.sum(draws < value) + 0.5 * np.sum(draws == value)) / len(draws))
    low, q16, median, q84, high = np.quantile(draws, [(1 - CENTRAL) / 2, 0.16, 0.5, 0.84, (1 + CENTRAL) / 2])
    sigma = (q84 - q16) / 2
    pull = float((value - median) / sigma) if sigma > 0 else None
    outside = quantile < (1 - CENTRAL) / 2 or quantile > (1 + CENTRAL) / 2
    return PredictiveObservable(name, value, float(median), float(low), float(high), quantile, pull, bool(outside))


def _verdict(rows: list[PredictiveObservable]) -> tuple[float, str, str]:
    from scipy.stats import binom

    k, flagged = len(rows), [r for r in rows if r.flagged]
    chance = float(binom.sf(len(flagged) - 1, k, 1 - CENTRAL)) if flagged else 1.0
    expected = f"{k * (1 - CENTRAL):.2g} expected by chance"
    if not flagged:
        return chance, "passes", f"x_o lies inside the central {100 * CENTRAL:g} % of the posterior predictive " \
                                 f"for all {k} observables"
    names = ", ".join(f"{r.name} (quantile {r.quantile:.3f}" + ("" if r.pull is None else f", pull {r.pull:+.1f}σ")
                      + ")" for r in flagged[:8])
    names += f" and {len(flagged) - 8} more" if len(flagged) > 8 else ""
    where = f"x_o lies outside the central {100 * CENTRAL:g} % of the posterior predictive for {len(flagged)} of {k} " \
            f"observables: {names}"
    far = [r for r in flagged if r.pull is not None and abs(r.pull) > FAR_PULL]
    if chance <= FAIL_PROBABILITY or far:
        why = f"chance probability {chance:.2g}" + (f", {len(far)} beyond {FAR_PULL:g}σ" if far else "")
        return chance, "fails", (f"{where} ({expected}; {why}): the simulator does not describe the observation, "
                                 "or the posterior is far off at it")
    return chance, "passes", f"{where} ({expected}; chance probability {chance:.2g}, not significant)"
