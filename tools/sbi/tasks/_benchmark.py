r"""What the sbibm benchmark tasks share: names, argument checks, stored observations and batched sampling.

The three tasks of :mod:`tools.sbi.tasks.two_moons`, :mod:`~tools.sbi.tasks.gaussian_linear` and
:mod:`~tools.sbi.tasks.slcp` subclass :class:`BenchmarkTask`: each supplies its prior (as a torch
distribution for sbi and as a numpy sampler for stored observations), its simulator and an exact sampler of
its reference posterior. Observation ``number`` draws θ_true from the prior with
``observation_seed(name, number)`` and x_o with that seed + 1 (sbibm ships its observations as files; ours are
regenerated locally). Reference: Lueckmann et al., "Benchmarking Simulation-Based Inference", AISTATS 2021,
arXiv:2101.04653.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from physagent.tools.sbi._task import N_OBSERVATIONS, Observation, Parameter, observation_seed

__all__ = ["BenchmarkTask", "check_no_options", "numbered", "rejection_sample", "theta_parameters"]


def check_no_options(task_name: str, options: dict[str, Any]) -> None:
    """Refuse options for a task that takes none.

    Raises:
        TypeError: any option is given.
    """
    if options:
        raise TypeError(f"SBI task {task_name!r} takes no options, got {', '.join(sorted(options))}; "
                        f"call make_task({task_name!r}) without keyword arguments")


def rejection_sample(propose: Callable[[np.random.Generator, int], np.ndarray], n_samples: int,
                     rng: np.random.Generator, what: str, max_proposals: int = 50_000_000,
                     strict: bool = True) -> np.ndarray:
    """Collect ``n_samples`` accepted rows from ``propose(rng, n)`` (accepted rows of n proposals) in batches.

    Batches grow with the measured acceptance rate, so a typical call takes two or three batches. After
    ``max_proposals`` proposals it stops: with ``strict`` it raises, else it returns the (fewer) rows it has.

    Raises:
        ValueError: ``strict`` and fewer than ``n_samples`` rows in ``max_proposals`` proposals (``what`` names
            the posterior).
    """
    accepted: list[np.ndarray] = []
    n_accepted, n_proposed, batch = 0, 0, min(max(1000, 2 * n_samples), max_proposals)
    while n_accepted < n_samples and n_proposed < max_proposals:
        rows = propose(rng, batch)
        accepted.append(rows)
        n_accepted += len(rows)
        n_proposed += batch
        rate = max(n_accepted / n_proposed, 1e-4)
        batch = int(min(max(1.2 * (n_samples - n_accepted) / rate, 1000), 2_000_000, max_proposals - n_proposed))
    if strict and n_accepted < n_samples:
        raise ValueError(f"{what}: {n_accepted} of {n_samples} samples accepted in {n_proposed} proposals; "
                         "x_o is (nearly) impossible under the prior — check it has the task's observables")
    return np.concatenate(accepted)[:n_samples]


class BenchmarkTask(ABC):
    """Common part of the sbibm tasks (see :class:`tools.sbi._task.Task` for the interface)."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    observables: tuple[str, ...]
    seconds_per_simulation: float = 1e-6

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    @property
    def dim_theta(self) -> int:
        return len(self.parameters)

    @property
    def dim_x(self) -> int:
        return len(self.observables)

    @abstractmethod
    def prior(self) -> Any:
        """The prior as an sbi-compatible torch distribution."""

    @abstractmethod
    def sample_prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """θ of shape (n, d) from the prior, in numpy (for stored observations and tests)."""

    @abstractmethod
    def _simulate(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x of shape (n, k) for θ (n, d), checked by :meth:`simulate`."""

    @abstractmethod
    def _sample_posterior(self, x_o: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """n_samples draws of the reference posterior at x_o."""

    def simulate(self, theta: np.ndarray, seed: int, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """x of shape (n, k) for θ of shape (n, d); the same θ and seed give the same x.

        Raises:
            ValueError: θ is not an (n, d) array.
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != self.dim_theta:
            raise ValueError(f"{self.name}.simulate: theta has shape {theta.shape}, expected (n, {self.dim_theta}) "
                             f"with columns {', '.join(p.name for p in self.parameters)}")
        x = self._simulate(theta, np.random.default_rng(seed))
        if progress is not None:
            progress(len(theta))
        return x

    def observation(self, number: int) -> Observation:
        """Stored observation ``number`` (1 … N_OBSERVATIONS): θ_true from the prior, x_o simulated at θ_true.

        Raises:
            ValueError: ``number`` is out of range.
        """
        if not 1 <= number <= N_OBSERVATIONS:
            raise ValueError(f"{self.name}: observation number {number} is out of range; "
                             f"choose 1 … {N_OBSERVATIONS}")
        seed = observation_seed(self.name, number)
        theta_true = self.sample_prior(1, np.random.default_rng(seed))
        x = self.simulate(theta_true, seed + 1)
        return Observation(number=number, theta_true=theta_true[0], x=x[0])

    def reference_posterior(self, x_o: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
        """Exact samples (n_samples, d) of p(θ | x_o).

        Raises:
            ValueError: x_o does not have k finite entries, or n_samples < 1.
        """
        x_o = np.asarray(x_o, dtype=np.float64).reshape(-1)
        if x_o.size != self.dim_x or not np.all(np.isfinite(x_o)):
            raise ValueError(f"{self.name}.reference_posterior: x_o must be {self.dim_x} finite numbers "
                             f"({', '.join(self.observables)}), got {x_o.tolist()}")
        if n_samples < 1:
            raise ValueError(f"{self.name}.reference_posterior: n_samples={n_samples} must be at least 1")
        return self._sample_posterior(x_o, n_samples, np.random.default_rng(seed))

    def likelihood_intervals(self, x_o: np.ndarray, cl: float) -> dict[str, tuple[float, float]] | None:
        """None: the benchmark tasks are compared with their reference posteriors, not likelihood intervals."""
        return None


def numbered(prefix: str, count: int) -> tuple[str, ...]:
    """``prefix_1`` … ``prefix_count``."""
    return tuple(f"{prefix}_{i}" for i in range(1, count + 1))


def theta_parameters(count: int) -> tuple[Parameter, ...]:
    """Dimensionless parameters theta_1 … theta_count."""
    return tuple(Parameter(name, "", f"component {i} of θ") for i, name in enumerate(numbered("theta", count), 1))
