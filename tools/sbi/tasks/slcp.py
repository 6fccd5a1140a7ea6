r"""The SLCP benchmark task ("simple likelihood, complex posterior"): 5 parameters, four posterior modes.

Definition (Lueckmann et al. 2021, sbibm ``slcp``; from Papamakarios, Sterratt & Murray 2019):

    θ ~ U(−3, 3)⁵,   m = (θ1, θ2),   s1 = θ3²,   s2 = θ4²,   ρ = tanh θ5,
    Σ = [[s1², ρ s1 s2], [ρ s1 s2, s2²]],
    x = (x¹, x², x³, x⁴) flattened to 8 numbers, xʲ ~ N(m, Σ) i.i.d.

The likelihood only sees θ3², θ4², so the posterior has four symmetric modes (the signs of θ3, θ4).
(sbibm adds 10⁻⁶ to the diagonal of Σ for its Cholesky factor; we draw with the exact factor
[[s1, 0], [ρ s2, s2 √(1 − ρ²)]], which needs no regulariser.)

Reference posterior, without tuning, in two stages. The target in terms of m and Σ (θ up to the signs of
θ3, θ4, drawn last with probability ½ each) is

    π(m, Σ) ∝ Πⱼ N(xʲ | m, Σ) · |Σ|^(−5/4) sech^(1/2)θ5 · 1[θ in the box],

since |∂(m, Σ)/∂θ| = 16 |θ3 θ4|⁵ sech²θ5 and |Σ| = (θ3 θ4)⁴ sech²θ5. With x̄ the mean and S the scatter of the
n = 4 points and S_m = S + n (x̄ − m)(x̄ − m)ᵀ, the conditionals are conjugate:

    Σ | m ∝ InvWishart(Σ; ν = n − 1/2, S_m) · sech^(1/2)θ5 · 1[box],
    m | Σ ∝ N(m; x̄, Σ/n) · 1[box],

and π(m, Σ) ∝ |S_m|^(−7/4) InvWishart(Σ; ν, S_m) · sech^(1/2)θ5 · 1[box], where |S_m|^(−7/4) ∝ (1 + n δ_m)^(−7/4),
δ_m = (m − x̄)ᵀ S⁻¹ (m − x̄), is a 2-d Student t in m with 3/2 degrees of freedom.

1. Exact rejection: m from a t/uniform-on-the-box mixture, accepted in proportion to the t on the box; then
   Σ | m from the inverse Wishart, accepted with probability sech^(1/2)θ5 = (1 − ρ²)^(1/4) ≤ 1 if θ is in the box.
   Typically 10 % of proposals are accepted (10⁴ samples: median ~0.1 s; ≤ 1.5 s for the ten stored ones).
2. When θ_true lies near the edge of the box (|θ5| → 3 above all) the box cuts most of the proposal away and
   acceptance can fall below 10⁻⁴. After a budget of proposals the exact draws found so far start
   ``GIBBS_SWEEPS`` sweeps of a vectorised Gibbs sampler (m₁ | m₂, Σ and m₂ | m₁, Σ truncated normal; Σ | m by
   independence Metropolis from the inverse Wishart). Chains started at exact posterior draws stay exactly
   distributed, so the output is unbiased; only draws sharing a start are correlated, which the sweeps undo.

sbibm instead draws its SLCP reference by sampling-importance-resampling from the prior, a flow fitted to it and
rejection sampling; its ten observations avoid "extremely spiked posteriors" — ours are not chosen.

Task: ``make_task("slcp")``. Parameters theta_1 … theta_5; observables x_1 … x_8 (x¹₁, x¹₂, x²₁, …).
References: Lueckmann et al., arXiv:2101.04653; Papamakarios et al. (SNL), arXiv:1805.07226.
"""

from __future__ import annotations

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

__all__ = ["Slcp", "make_slcp"]

PRIOR_BOUND = 3.0
N_POINTS = 4  # i.i.d. 2-d draws per simulation
SIGMA_DOF = N_POINTS - 0.5  # ν of the inverse-Wishart proposal of Σ | m that makes the weights bounded
T_DOF = SIGMA_DOF - 2  # degrees of freedom of the marginal posterior of m (a 2-d t)
UNIFORM_SHARE = 0.2  # share of the m proposals drawn uniformly on the box
PILOT_PROPOSALS = 2_000_000  # exact-rejection budget (≈ 2 s) before the Gibbs stage
GIBBS_SWEEPS = 100  # from exact starting points
BURN_IN_SWEEPS = 300  # added when no exact draw was found to start from
SIGMA_TRIES = 3  # Metropolis proposals of Σ per sweep


class Slcp(BenchmarkTask):
    """SLCP (sbibm): θ ∈ [−3, 3]⁵ sets the mean and covariance of four 2-d Gaussian draws."""

    name = "slcp"
    description = ("SLCP, simple likelihood and complex posterior (sbibm benchmark, Lueckmann et al. 2021, "
                   "arXiv:2101.04653): θ ~ U(−3,3)⁵; x is four 2-d Gaussian points with mean (θ1, θ2), "
                   "standard deviations θ3², θ4² and correlation tanh θ5. The posterior has four symmetric "
                   "modes (signs of θ3, θ4) and sharp, curved ridges. Exact reference posterior.")
    parameters = theta_parameters(5)
    observables = numbered("x", 2 * N_POINTS)

    def prior(self) -> Any:
        """BoxUniform(−3, 3) on θ1 … θ5 (float32)."""
        import torch
        from sbi.utils import BoxUniform

        return BoxUniform(-PRIOR_BOUND * torch.ones(5), PRIOR_BOUND * torch.ones(5))

    def sample_prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-PRIOR_BOUND, PRIOR_BOUND, size=(n, 5))

    def _simulate(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, np.tanh(theta[:, 4])
        z = rng.standard_normal(size=(len(theta), N_POINTS, 2))
        first = theta[:, None, 0] + s1[:, None] * z[..., 0]
        second = theta[:, None, 1] + (s2 * rho)[:, None] * z[..., 0] + (s2 * np.sqrt(1 - rho**2))[:, None] * z[..., 1]
        return np.stack([first, second], axis=-1).reshape(len(theta), 2 * N_POINTS)

    def _sample_posterior(self, x_o: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        posterior = _Posterior(x_o)
        budget = min(PILOT_PROPOSALS, max(200 * n_samples, 200_000))
        theta = rejection_sample(posterior.propose, n_samples, rng, f"slcp reference posterior at x_o={x_o.tolist()}",
                                 max_proposals=budget, strict=False)
        if len(theta) == n_samples:
            return theta
        if len(theta):
            return posterior.gibbs(theta[rng.integers(len(theta), size=n_samples)], GIBBS_SWEEPS, rng)
        return posterior.gibbs(posterior.feasible_start(n_samples), GIBBS_SWEEPS + BURN_IN_SWEEPS, rng)


class _Posterior:
    """The SLCP posterior at one x_o: exact proposals (stage 1) and Gibbs sweeps (stage 2)."""

    def __init__(self, x_o: np.ndarray) -> None:
        points = x_o.reshape(N_POINTS, 2)
        self.mean = points.mean(axis=0)
        self.scatter = (points - self.mean).T @ (points - self.mean)
        try:
            t_tril = np.linalg.cholesky(self.scatter / (T_DOF * N_POINTS))
        except np.linalg.LinAlgError:
            raise ValueError(f"slcp reference posterior: the {N_POINTS} points of x_o={x_o.tolist()} lie on a "
                             "line, which no θ in the prior box produces; pass an x_o simulated by the task") from None
        self.mean_proposal = _MeanProposal(self.mean, t_tril)

    def propose(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The accepted θ of n exact-rejection proposals."""
        m, accept_m = self.mean_proposal.draw(rng, n)
        cov = self._draw_cov(rng, m)
        keep = rng.uniform(size=n) < accept_m * _cov_weight(cov)
        return _theta(m[keep], cov[keep], rng)

    def gibbs(self, theta: np.ndarray, n_sweeps: int, rng: np.random.Generator) -> np.ndarray:
        """θ after ``n_sweeps`` Gibbs sweeps from each row of ``theta`` (inside the box)."""
        m, cov = theta[:, :2].copy(), _cov(theta)
        for _ in range(n_sweeps):
            for i in (0, 1):
                m[:, i] = self._draw_mean_component(rng, m, cov, i)
            for _ in range(SIGMA_TRIES):
                proposed = self._draw_cov(rng, m)
                weight, current = _cov_weight(proposed), _cov_weight(cov)
                take = rng.uniform(size=len(m)) * current < weight
                cov[take] = proposed[take]
        return _theta(m, cov, rng)

    def feasible_start(self, n: int) -> np.ndarray:
        """A point inside the box near the data (for the Gibbs sampler when no exact draw was found)."""
        m = np.clip(self.mean, -0.9 * PRIOR_BOUND, 0.9 * PRIOR_BOUND)
        offset = self.mean - m
        cov = (self.scatter + N_POINTS * np.outer(offset, offset)) / (SIGMA_DOF + 3)
        scale = np.sqrt(np.clip(np.diag(cov), 1e-12, (0.9 * PRIOR_BOUND) ** 4))
        rho_max = np.tanh(0.9 * PRIOR_BOUND)
        rho = np.clip(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), -rho_max, rho_max)
        return np.tile([m[0], m[1], np.sqrt(scale[0]), np.sqrt(scale[1]), np.arctanh(rho)], (n, 1))

    def _draw_cov(self, rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
        offset = m - self.mean
        return _inverse_wishart(rng, SIGMA_DOF, self.scatter + N_POINTS * offset[:, :, None] * offset[:, None, :])

    def _draw_mean_component(self, rng: np.random.Generator, m: np.ndarray, cov: np.ndarray, i: int) -> np.ndarray:
        from scipy.stats import truncnorm

        j = 1 - i
        centre = self.mean[i] + cov[:, i, j] / cov[:, j, j] * (m[:, j] - self.mean[j])
        std = np.sqrt(np.maximum(cov[:, i, i] - cov[:, i, j] ** 2 / cov[:, j, j], 1e-300) / N_POINTS)
        low, high = (-PRIOR_BOUND - centre) / std, (PRIOR_BOUND - centre) / std
        draw = np.asarray(truncnorm.rvs(low, high, loc=centre, scale=std, random_state=rng), dtype=np.float64)
        return np.clip(draw, -PRIOR_BOUND, PRIOR_BOUND)


def _cov_weight(cov: np.ndarray) -> np.ndarray:
    """sech^(1/2)θ5 · 1[θ3, θ4, θ5 in the box] for a stack of Σ (the target over the inverse-Wishart proposal)."""
    rho = cov[:, 0, 1] / np.sqrt(cov[:, 0, 0] * cov[:, 1, 1])
    inside = (np.abs(rho) <= np.tanh(PRIOR_BOUND)) & (np.maximum(cov[:, 0, 0], cov[:, 1, 1]) <= PRIOR_BOUND**4)
    return np.where(inside, np.abs(1 - rho**2) ** 0.25, 0.0)


def _theta(m: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """θ for means m (n, 2) and covariances (n, 2, 2), with random signs of θ3 and θ4."""
    rho = np.clip(cov[:, 0, 1] / np.sqrt(cov[:, 0, 0] * cov[:, 1, 1]), -np.tanh(PRIOR_BOUND), np.tanh(PRIOR_BOUND))
    signs = rng.choice([-1.0, 1.0], size=(len(m), 2))
    return np.column_stack([m, signs * np.stack([cov[:, 0, 0], cov[:, 1, 1]], axis=1) ** 0.25, np.arctanh(rho)])


def _cov(theta: np.ndarray) -> np.ndarray:
    """Σ (n, 2, 2) of each row of θ."""
    s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, np.tanh(theta[:, 4])
    return np.stack([np.stack([s1**2, rho * s1 * s2], axis=1), np.stack([rho * s1 * s2, s2**2], axis=1)], axis=1)


class _MeanProposal:
    """m from the mixture (1 − w) t₁.₅(x̄, S/(1.5 n)) + w U(box), with the probability of accepting each draw so
    that accepted m follow the marginal posterior ∝ (1 + n δ_m)^(−7/4) restricted to the box.

    The t alone fails when x̄ lies far outside the box (the posterior then sits on the box edge) and the uniform
    alone when the t is narrow; accepting with r(m)/r_max, r = t/((1 − w) t + w/36), is exact for either.
    """

    def __init__(self, mean: np.ndarray, t_tril: np.ndarray) -> None:
        self.mean, self.t_tril = mean, t_tril
        self.t_norm = float(1.0 / (2 * np.pi * t_tril[0, 0] * t_tril[1, 1]))  # the 2-d t density at its mode
        self.precision = np.linalg.inv(t_tril @ t_tril.T)
        self.ratio_max = self._ratio(np.atleast_1d(_box_mahalanobis_min(mean, self.precision)))[0]

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n proposed means (n, 2) and their acceptance probabilities (0 outside the box)."""
        radial = np.sqrt(rng.chisquare(T_DOF, size=n) / T_DOF)
        m = self.mean + (rng.standard_normal((n, 2)) @ self.t_tril.T) / radial[:, None]
        uniform = rng.uniform(size=n) < UNIFORM_SHARE
        m[uniform] = rng.uniform(-PRIOR_BOUND, PRIOR_BOUND, size=(int(uniform.sum()), 2))
        offset = m - self.mean
        mahalanobis = np.einsum("ni,ij,nj->n", offset, self.precision, offset)
        inside = np.all(np.abs(m) <= PRIOR_BOUND, axis=1)
        return m, np.where(inside, self._ratio(mahalanobis) / self.ratio_max, 0.0)

    def _ratio(self, mahalanobis: np.ndarray) -> np.ndarray:
        t = self.t_norm * (1 + mahalanobis / T_DOF) ** (-(T_DOF + 2) / 2)
        return t / ((1 - UNIFORM_SHARE) * t + UNIFORM_SHARE / (2 * PRIOR_BOUND) ** 2)


def _box_mahalanobis_min(centre: np.ndarray, precision: np.ndarray) -> float:
    """min over m in the prior box of (m − centre)ᵀ P (m − centre): 0 inside, else the best point on an edge."""
    if np.all(np.abs(centre) <= PRIOR_BOUND):
        return 0.0
    best = np.inf
    for fixed in (0, 1):
        free = 1 - fixed
        for edge in (-PRIOR_BOUND, PRIOR_BOUND):
            point = np.empty(2)
            point[fixed] = edge
            shift = -precision[free, fixed] * (edge - centre[fixed]) / precision[free, free]
            point[free] = np.clip(centre[free] + shift, -PRIOR_BOUND, PRIOR_BOUND)
            best = min(best, float((point - centre) @ precision @ (point - centre)))
    return best


def _inverse_wishart(rng: np.random.Generator, dof: float, scale: np.ndarray) -> np.ndarray:
    """One draw (n, 2, 2) of InvWishart(dof, scaleᵢ) per scale matrix (n, 2, 2), by the Bartlett decomposition of
    the Wishart(dof, scale⁻¹) precision."""
    n = len(scale)
    bartlett = np.zeros((n, 2, 2))
    bartlett[:, 0, 0] = np.sqrt(rng.chisquare(dof, size=n))
    bartlett[:, 1, 1] = np.sqrt(rng.chisquare(dof - 1, size=n))
    bartlett[:, 1, 0] = rng.standard_normal(size=n)
    factor = _cholesky_2x2(_inverse_2x2(scale)) @ bartlett
    return _inverse_2x2(factor @ np.swapaxes(factor, 1, 2))


def _inverse_2x2(matrix: np.ndarray) -> np.ndarray:
    """Inverses of a stack (n, 2, 2) of symmetric matrices."""
    det = matrix[:, 0, 0] * matrix[:, 1, 1] - matrix[:, 0, 1] ** 2
    inverse = np.empty_like(matrix)
    inverse[:, 0, 0], inverse[:, 1, 1] = matrix[:, 1, 1] / det, matrix[:, 0, 0] / det
    inverse[:, 0, 1] = inverse[:, 1, 0] = -matrix[:, 0, 1] / det
    return inverse


def _cholesky_2x2(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack (n, 2, 2) of covariance matrices."""
    tril = np.zeros_like(cov)
    tril[:, 0, 0] = np.sqrt(cov[:, 0, 0])
    tril[:, 1, 0] = cov[:, 1, 0] / tril[:, 0, 0]
    tril[:, 1, 1] = np.sqrt(np.maximum(cov[:, 1, 1] - tril[:, 1, 0] ** 2, 0.0))
    return tril


@register_task("slcp")
def make_slcp(**options: Any) -> Slcp:
    """The SLCP task (takes no options)."""
    check_no_options("slcp", options)
    return Slcp()
