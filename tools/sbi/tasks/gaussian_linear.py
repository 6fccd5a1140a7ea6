r"""The Gaussian-linear benchmark task: a 10-d conjugate Gaussian with an analytic posterior.

Definition (Lueckmann et al. 2021, sbibm ``gaussian_linear``):

    θ ~ N(0, 0.1 · I₁₀),    x | θ ~ N(θ, 0.1 · I₁₀).

Reference posterior, analytic (conjugate Gaussian): precision 1/0.1 + 1/0.1 = 20, so

    θ | x_o ~ N(x_o / 2, 0.05 · I₁₀).

Task: ``make_task("gaussian_linear")``. Parameters theta_1 … theta_10; observables x_1 … x_10 (dimensionless).
Reference: Lueckmann et al., arXiv:2101.04653.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from physagent.tools.sbi._task import register_task
from physagent.tools.sbi.tasks._benchmark import BenchmarkTask, check_no_options, numbered, theta_parameters

__all__ = ["GaussianLinear", "make_gaussian_linear"]

DIM = 10
PRIOR_VARIANCE = 0.1
NOISE_VARIANCE = 0.1
POSTERIOR_VARIANCE = 1.0 / (1.0 / PRIOR_VARIANCE + 1.0 / NOISE_VARIANCE)  # 0.05


class GaussianLinear(BenchmarkTask):
    """Gaussian linear (sbibm): θ ∈ ℝ¹⁰ with a Gaussian prior, x = θ + Gaussian noise."""

    name = "gaussian_linear"
    description = ("Gaussian linear (sbibm benchmark, Lueckmann et al. 2021, arXiv:2101.04653): θ ~ N(0, 0.1·I) in "
                   "10 dimensions, x ~ N(θ, 0.1·I). The posterior is Gaussian, N(x/2, 0.05·I): a check that a "
                   "method gets a simple 10-d posterior right. Analytic reference posterior.")
    parameters = theta_parameters(DIM)
    observables = numbered("x", DIM)

    def prior(self) -> Any:
        """MultivariateNormal(0, 0.1·I) on θ (float32)."""
        import torch
        from torch.distributions import MultivariateNormal

        return MultivariateNormal(torch.zeros(DIM), PRIOR_VARIANCE * torch.eye(DIM))

    def sample_prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, math.sqrt(PRIOR_VARIANCE), size=(n, DIM))

    def _simulate(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return theta + rng.normal(0.0, math.sqrt(NOISE_VARIANCE), size=theta.shape)

    def _sample_posterior(self, x_o: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        mean = POSTERIOR_VARIANCE / NOISE_VARIANCE * x_o
        return mean + rng.normal(0.0, math.sqrt(POSTERIOR_VARIANCE), size=(n_samples, DIM))


@register_task("gaussian_linear")
def make_gaussian_linear(**options: Any) -> GaussianLinear:
    """The Gaussian-linear task (takes no options)."""
    check_no_options("gaussian_linear", options)
    return GaussianLinear()
