r"""Which x_o a posterior is evaluated at: a given x, a stored observation of the task, or one simulated at a θ.

Every SBI tool that conditions on data takes the same three optional arguments, at most one of them given:

- ``observation``: x_o itself, k numbers in the order of the task's observables;
- ``observation_number``: stored observation 1 … 10 of the task (θ_true known; the default is 1);
- ``observe_at``: θ, d numbers in the order of the parameters; x_o is simulated there with the call's seed
  (θ_true = θ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools.sbi._artifact import LoadedPosterior
from physagent.tools.sbi._task import N_OBSERVATIONS

__all__ = ["ResolvedObservation", "resolve_observation"]


@dataclass(frozen=True)
class ResolvedObservation:
    """x_o, θ_true where known, and a label for results and plots."""

    x: np.ndarray  # (k,)
    theta_true: np.ndarray | None
    label: str  # "observation 3 of two_moons", "simulated at alpha_s=0.1365 (seed 0)", "given x"


def resolve_observation(tool: str, loaded: LoadedPosterior, observation: list[float] | None,
                        observation_number: int | None, observe_at: list[float] | None,
                        seed: int) -> ResolvedObservation:
    """The x_o asked for (see the module docstring).

    Raises:
        ToolInputError: more than one way given; a wrong length (naming the expected entries); NaN or ±inf;
            θ outside the prior; an observation number out of range; the simulator failed at ``observe_at``.
    """
    given = [name for name, value in (("observation", observation), ("observation_number", observation_number),
                                      ("observe_at", observe_at)) if value is not None]
    if len(given) > 1:
        raise ToolInputError(f"{tool}: give at most one of observation, observation_number and observe_at; got "
                             f"{' and '.join(given)}.", tool=tool, param=given[1])
    task = loaded.task
    if observation is not None:
        x = _checked(tool, "observation", observation, list(task.observables), "observables")
        return ResolvedObservation(x, None, "given x")
    if observe_at is not None:
        return _simulated(tool, loaded, observe_at, seed)
    number = 1 if observation_number is None else observation_number
    if not 1 <= number <= N_OBSERVATIONS:
        raise ToolInputError.for_param(tool, "observation_number", number, f"must be 1 … {N_OBSERVATIONS}.")
    try:
        stored = task.observation(number)
    except ValueError as exc:
        raise ToolInputError.for_param(tool, "observation_number", number, f"is not available: {exc}") from exc
    x = np.asarray(stored.x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise ToolRuntimeError(f"{tool}: the simulator failed for observation {number} of {task.name} (x has NaN); "
                               "choose another observation_number.")
    return ResolvedObservation(x, np.asarray(stored.theta_true, dtype=np.float64).reshape(-1),
                               f"observation {number} of {task.name}")


def _simulated(tool: str, loaded: LoadedPosterior, observe_at: list[float], seed: int) -> ResolvedObservation:
    import torch

    task = loaded.task
    theta = _checked(tool, "observe_at", observe_at, loaded.parameter_names, "parameters")
    inside = loaded.prior.support.check(torch.as_tensor(theta, dtype=torch.float32)[None])
    if not bool(torch.as_tensor(inside).all()):
        raise ToolInputError.for_param(tool, "observe_at", observe_at, "lies outside the prior the posterior was "
                                       "trained with (no simulations there). Choose θ inside the prior.")
    x = np.asarray(task.simulate(theta[None], seed), dtype=np.float64).reshape(-1)
    if x.size != len(task.observables) or not np.all(np.isfinite(x)):
        raise ToolInputError.for_param(tool, "observe_at", observe_at, f"gave no valid x: the simulator returned "
                                       f"{x.tolist()[:8]}. Try another θ or seed.")
    point = ", ".join(f"{name}={value:.6g}" for name, value in zip(loaded.parameter_names, theta, strict=True))
    return ResolvedObservation(x, theta, f"simulated at {point} (seed {seed})")


def _checked(tool: str, param: str, values: list[float], names: list[str], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size != len(names):
        shown = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
        raise ToolInputError.for_param(tool, param, _short(values), f"has {array.size} entries; the posterior expects "
                                       f"{len(names)}, its {what} in this order: {shown}.")
    if not np.all(np.isfinite(array)):
        raise ToolInputError.for_param(tool, param, _short(values), "holds NaN or ±inf; give finite numbers.")
    return array


def _short(values: list[float]) -> list[float] | str:
    """The values for an error message: the list itself, or a count when it is long."""
    return values if len(values) <= 12 else f"<{len(values)} numbers: {values[0]:g}, {values[1]:g}, …>"
