r"""The two-moons benchmark task: a 2-d simulator whose posterior is a crescent (two for most x).

Definition (Lueckmann et al. 2021, sbibm ``two_moons``; from Greenberg, Nonnenmacher & Macke 2019):

    θ ~ U(−1, 1)²,   a ~ U(−π/2, π/2),   r ~ N(0.1, 0.01²),
    p = (r cos a + 0.25,  r sin a),
    x = p + (−|θ1 + θ2|/√2,  (−θ1 + θ2)/√2).

Reference posterior, exact by construction: with z = ((θ1 + θ2)/√2, (−θ1 + θ2)/√2), a rotation of θ by π/4,
x = p + (−|z1|, z2), so p(θ | x_o) ∝ p_p(x_o,1 + |z1|, x_o,2 − z2) on the prior box. Draw p from its
distribution, set |z1| = p1 − x_o,1 (rejected if negative: no θ gives that p) and z2 = x_o,2 − p2, pick the sign
of z1 with probability ½ each (the two moons), rotate back, θ = ((z1 − z2)/√2, (z1 + z2)/√2), and keep θ inside
the prior. The rotation and reflection have unit Jacobian, so accepted θ are exact posterior draws. (sbibm's
sampler omits the p1 ≥ x_o,1 check, which adds a little spurious mass when |θ1 + θ2| is small.)

Task: ``make_task("two_moons")``. Parameters theta_1, theta_2; observables x_1, x_2 (dimensionless).
References: Lueckmann et al., arXiv:2101.04653; Greenberg et al., arXiv:1905.07488.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from physagent.tools.sbi._task import register_task
from physagent.tools.sbi.tasks._benchmark import (
    BenchmarkTask,
    check_no_options,
    numbered,
    rejection_sample,
    theta_parameters,
)

__all__ = ["TwoMoons", "make_two_moons"]

PRIOR_BOUND = 1.0
R_MEAN, R_STD, OFFSET = 0.1, 0.01, 0.25


class TwoMoons(BenchmarkTask):
    """Two moons (sbibm): θ ∈ [−1, 1]², x ∈ ℝ², a crescent-shaped, bimodal posterior."""

    name = "two_moons"
    description = ("Two moons (sbibm benchmark, Lueckmann et al. 2021, arXiv:2101.04653): θ ~ U(−1,1)², x is a "
                   "noisy point on a half-circle of radius ≈ 0.1 shifted by (−|θ1+θ2|/√2, (θ2−θ1)/√2). The "
                   "posterior is a thin crescent, usually two of them (the sign of θ1+θ2 is not identified). "
                   "Exact reference posterior.")
    parameters = theta_parameters(2)
    observables = numbered("x", 2)

    def prior(self) -> Any:
        """BoxUniform(−1, 1) on θ1, θ2 (float32)."""
        import torch
        from sbi.utils import BoxUniform

        return BoxUniform(-PRIOR_BOUND * torch.ones(2), PRIOR_BOUND * torch.ones(2))

    def sample_prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-PRIOR_BOUND, PRIOR_BOUND, size=(n, 2))

    def _simulate(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shift = np.stack([-np.abs(theta[:, 0] + theta[:, 1]), theta[:, 1] - theta[:, 0]], axis=1) / math.sqrt(2)
        return _draw_p(rng, len(theta)) + shift

    def _sample_posterior(self, x_o: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        x1, x2 = float(x_o[0]), float(x_o[1])

        def propose(rng: np.random.Generator, n: int) -> np.ndarray:
            p = _draw_p(rng, n)
            z1 = (p[:, 0] - x1) * np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0)
            z2 = x2 - p[:, 1]
            theta = np.stack([z1 - z2, z1 + z2], axis=1) / math.sqrt(2)
            keep = (p[:, 0] >= x1) & np.all(np.abs(theta) <= PRIOR_BOUND, axis=1)
            accepted: np.ndarray = theta[keep]
            return accepted

        return rejection_sample(propose, n_samples, rng, f"two_moons reference posterior at x_o={x_o.tolist()}")


def _draw_p(rng: np.random.Generator, n: int) -> np.ndarray:
    """The θ-independent point p = (r cos a + 0.25, r sin a) on the noisy half-circle."""
    a = rng.uniform(-math.pi / 2, math.pi / 2, size=n)
    r = rng.normal(R_MEAN, R_STD, size=n)
    return np.stack([r * np.cos(a) + OFFSET, r * np.sin(a)], axis=1)


@register_task("two_moons")
def make_two_moons(**options: Any) -> TwoMoons:
    """The two-moons task (takes no options)."""
    check_no_options("two_moons", options)
    return TwoMoons()
