r"""What an SBI task is: a prior, a batched seeded simulator, stored observations and, where one exists, a
reference posterior or a likelihood-based interval to compare with.

Every simulator ``sbi_train`` can use is a :class:`Task`: the built-in benchmark tasks of
:mod:`tools.sbi.tasks` (two moons, Gaussian linear, SLCP — from their published definitions), the physics
tasks (a binned signal strength with a background nuisance; a Pythia8 shower parameter), and user code run in
the sandbox (wrapped by :mod:`tools.sbi._simulators`). Tasks are looked up by name with :func:`make_task`.

Conventions (every task keeps them, the tools rely on them):

- θ is a float64 array of shape (n, d) in the units of :attr:`Task.parameters`; x is (n, k) float64 with the
  names of :attr:`Task.observables`. A row of x that could not be simulated is NaN (the tools drop and count it).
- ``simulate(theta, seed)`` is deterministic given ``seed`` and may be called in batches: the same θ rows with
  the same seed give the same x. ``progress(n_done)`` is called as rows finish (tasks that take seconds per row).
- ``observation(number)`` (1 … :data:`N_OBSERVATIONS`) draws θ_true from the prior and x_o from the simulator,
  each with a fixed seed derived from the task name and the number, so "observation 3 of two moons" is the same
  everywhere (sbibm ships ten fixed observations per task; ours are regenerated locally, not downloaded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["N_OBSERVATIONS", "Observation", "Parameter", "Task", "TaskFactory", "make_task", "observation_seed",
           "register_task", "task_names", "with_defaults"]

N_OBSERVATIONS = 10


@dataclass(frozen=True)
class Parameter:
    """One inferred parameter: its name (a Python identifier), unit ('' if none) and a short description."""

    name: str
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Observation:
    """A stored observation of a task: the true parameters and the simulated data."""

    number: int
    theta_true: np.ndarray  # (d,)
    x: np.ndarray  # (k,)


class Task(Protocol):
    """The interface of every simulator the SBI tools use (see the module docstring for conventions)."""

    name: str
    description: str  # one paragraph for a person and the agent: what is simulated, with a reference
    parameters: tuple[Parameter, ...]
    observables: tuple[str, ...]  # names of the k entries of x
    options: dict[str, Any]  # the task options it was made with (recorded in the posterior card)
    seconds_per_simulation: float  # rough cost, to choose batch sizes and warn before long runs

    def prior(self) -> Any:
        """The prior as a torch distribution sbi accepts (``sbi.utils.BoxUniform``, ``MultivariateNormal`` or
        ``sbi.utils.MultipleIndependent``), float32, event shape (d,)."""
        ...

    def simulate(self, theta: np.ndarray, seed: int,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """x for each row of θ; NaN rows for failed simulations."""
        ...

    def observation(self, number: int) -> Observation:
        """Stored observation ``number`` (1 … N_OBSERVATIONS)."""
        ...

    def reference_posterior(self, x_o: np.ndarray, n_samples: int, seed: int) -> np.ndarray | None:
        """Samples (n_samples, d) of the true posterior p(θ | x_o) (analytic, rejection or MCMC), or None when
        the task has none."""
        ...

    def likelihood_intervals(self, x_o: np.ndarray, cl: float) -> dict[str, tuple[float, float]] | None:
        """Frequentist (profile-likelihood) intervals at confidence level ``cl`` for the parameters of interest,
        by name, or None when the task has no likelihood to compare with."""
        ...


TaskFactory = Callable[..., Task]
_FACTORIES: dict[str, TaskFactory] = {}


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: register a task factory (called with the task options as keyword arguments)."""

    def decorate(factory: TaskFactory) -> TaskFactory:
        _FACTORIES[name] = factory
        return factory

    return decorate


def task_names() -> list[str]:
    """Names of the registered tasks, sorted."""
    from physagent.tools.sbi import tasks  # noqa: F401  (registers the built-in tasks)

    return sorted(_FACTORIES)


def make_task(name: str, **options: Any) -> Task:
    """The task ``name`` made with ``options``; KeyError with the known names if there is none."""
    names = task_names()
    if name not in _FACTORIES:
        raise KeyError(f"no SBI task {name!r}; known tasks: {', '.join(names)}")
    return _FACTORIES[name](**options)


def observation_seed(task_name: str, number: int) -> int:
    """The fixed seed of stored observation ``number`` of a task (stable across Python versions)."""
    digest = hashlib.sha256(f"{task_name}/observation/{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def with_defaults(task_name: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``options``; ToolInputError naming an option the task does not have."""
    from physagent.tools._errors import ToolInputError

    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ToolInputError(f"SBI task {task_name}: unknown option(s) {', '.join(unknown)}; its options are "
                             f"{', '.join(defaults)}.", param=unknown[0], value=options[unknown[0]])
    return defaults | options
