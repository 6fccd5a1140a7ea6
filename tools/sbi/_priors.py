r"""Priors of the SBI tools: per-parameter specs a user (or an LLM) can write, and the torch distributions sbi uses.

A prior is a list of :class:`PriorSpec`, one per parameter, in the order of θ:

- ``{"name": "mu", "distribution": "uniform", "low": 0, "high": 3, "unit": ""}`` — U(low, high);
- ``{"name": "m", "distribution": "gaussian", "mean": 125, "std": 2, "unit": "GeV"}`` — N(mean, std²).

:func:`build_prior` turns them into what sbi expects: ``sbi.utils.BoxUniform`` when every parameter is uniform,
a diagonal ``MultivariateNormal`` when every one is Gaussian, else ``sbi.utils.MultipleIndependent`` of the 1-d
distributions (all float32, event shape (d,)). :func:`describe_prior` writes any of those back as plain JSON
for the posterior card. A prior for a built-in task replaces the task's own and must name the task's
parameters in order (:func:`check_override`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from physagent.tools._errors import ToolInputError
from physagent.tools.sbi._task import Parameter, Task

__all__ = ["PriorSpec", "build_prior", "check_override", "describe_prior", "parameters_of", "spec_dicts"]

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class PriorSpec(BaseModel):
    """The prior of one parameter: uniform (low, high) or gaussian (mean, std), with its unit."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=IDENTIFIER, description="Parameter name, a Python identifier, e.g. 'mu'.")
    distribution: Literal["uniform", "gaussian"] = Field(description="uniform (needs low, high) or gaussian "
                                                                      "(needs mean, std).")
    low: float | None = Field(default=None, description="Lower edge of a uniform prior.")
    high: float | None = Field(default=None, description="Upper edge of a uniform prior (> low).")
    mean: float | None = Field(default=None, description="Mean of a gaussian prior.")
    std: float | None = Field(default=None, gt=0, description="Standard deviation of a gaussian prior (> 0).")
    unit: str = Field(default="", max_length=32, description="Unit of the parameter, e.g. 'GeV' ('' if none).")

    @model_validator(mode="after")
    def _complete(self) -> PriorSpec:
        if self.distribution == "uniform":
            if self.low is None or self.high is None or self.mean is not None or self.std is not None:
                raise ValueError(f"a uniform prior of {self.name!r} takes low and high (and not mean, std)")
            if not self.low < self.high:
                raise ValueError(f"the uniform prior of {self.name!r} needs low < high, got {self.low:g} ≥ "
                                 f"{self.high:g}")
        elif self.mean is None or self.std is None or self.low is not None or self.high is not None:
            raise ValueError(f"a gaussian prior of {self.name!r} takes mean and std (and not low, high)")
        return self

    def describe(self) -> str:
        """``U(0, 3)`` or ``N(125, 2²) GeV``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.distribution == "uniform":
            return f"{self.name} ~ U({self.low:g}, {self.high:g}){unit}"
        return f"{self.name} ~ N({self.mean:g}, {self.std:g}²){unit}"


def build_prior(specs: list[PriorSpec]) -> Any:
    """The torch distribution of ``specs`` (see the module docstring), float32, event shape (d,)."""
    import torch
    from sbi.utils import BoxUniform, MultipleIndependent
    from torch.distributions import MultivariateNormal, Normal, Uniform

    def tensor(values: list[float | None]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32)

    kinds = {spec.distribution for spec in specs}
    if kinds == {"uniform"}:
        return BoxUniform(low=tensor([s.low for s in specs]), high=tensor([s.high for s in specs]))
    if kinds == {"gaussian"}:
        return MultivariateNormal(tensor([s.mean for s in specs]), torch.diag(tensor([s.std for s in specs]) ** 2))
    parts = [Uniform(tensor([s.low]), tensor([s.high])) if s.distribution == "uniform"
             else Normal(tensor([s.mean]), tensor([s.std])) for s in specs]
    with torch.random.fork_rng():  # MultipleIndependent draws a sample to learn the dimensions
        return MultipleIndependent(parts)


def spec_dicts(specs: list[PriorSpec]) -> list[dict[str, Any]]:
    """The specs as JSON (only the fields that apply)."""
    return [spec.model_dump(exclude_none=True) for spec in specs]


def parameters_of(specs: list[PriorSpec]) -> tuple[Parameter, ...]:
    """The task parameters a user prior defines (for a user-code simulator)."""
    return tuple(Parameter(spec.name, spec.unit, spec.describe()) for spec in specs)


def check_override(tool: str, specs: list[PriorSpec], task: Task) -> None:
    """Refuse a prior for a built-in task that does not name the task's parameters, in order, with their units.

    Raises:
        ToolInputError: wrong dimension, names or order.
    """
    expected = [p.name for p in task.parameters]
    given = [spec.name for spec in specs]
    listing = ", ".join(f"{p.name}" + (f" [{p.unit}]" if p.unit else "") for p in task.parameters)
    if len(given) != len(expected):
        raise ToolInputError.for_param(
            tool, "prior", given, f"is a prior of wrong dimension: {len(given)} parameter(s) for task "
            f"{task.name!r}, which has {len(expected)}: {listing}. Give one entry per parameter, in this order, "
            "or leave prior out to use the task's own.")
    if given != expected:
        raise ToolInputError.for_param(
            tool, "prior", given, f"does not name the parameters of task {task.name!r}: expected {listing}, in "
            "this order. Rename the entries or leave prior out to use the task's own.")


def describe_prior(prior: Any, parameters: tuple[Parameter, ...]) -> list[dict[str, Any]]:
    """The prior as one JSON entry per parameter where it factorises (BoxUniform, diagonal Gaussian,
    MultipleIndependent of 1-d parts), else one entry describing the whole distribution."""
    import torch
    from sbi.utils import BoxUniform, MultipleIndependent
    from torch.distributions import MultivariateNormal, Normal, Uniform

    names = [p.name for p in parameters]
    units = [p.unit for p in parameters]
    if isinstance(prior, BoxUniform):
        low, high = prior.base_dist.low.tolist(), prior.base_dist.high.tolist()
        return [{"name": n, "distribution": "uniform", "low": lo, "high": hi, "unit": u}
                for n, lo, hi, u in zip(names, low, high, units, strict=True)]
    if isinstance(prior, MultivariateNormal):
        cov = prior.covariance_matrix
        if torch.equal(cov, torch.diag(torch.diagonal(cov))):
            std = torch.sqrt(torch.diagonal(cov)).tolist()
            return [{"name": n, "distribution": "gaussian", "mean": m, "std": s, "unit": u}
                    for n, m, s, u in zip(names, prior.loc.tolist(), std, units, strict=True)]
    if isinstance(prior, MultipleIndependent) and all(n == 1 for n in prior.dims_per_dist):
        rows = []
        for name, unit, part in zip(names, units, prior.dists, strict=True):
            if isinstance(part, Uniform):
                rows.append({"name": name, "distribution": "uniform", "low": float(part.low.reshape(-1)[0]),
                             "high": float(part.high.reshape(-1)[0]), "unit": unit})
            elif isinstance(part, Normal):
                rows.append({"name": name, "distribution": "gaussian", "mean": float(part.loc.reshape(-1)[0]),
                             "std": float(part.scale.reshape(-1)[0]), "unit": unit})
            else:
                rows.append({"name": name, "distribution": type(part).__name__, "unit": unit})
        return rows
    return [{"name": ", ".join(names), "distribution": type(prior).__name__, "repr": repr(prior)[:500]}]
