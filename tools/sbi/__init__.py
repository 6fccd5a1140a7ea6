r"""Simulation-based inference on the ``sbi`` package: train amortized posteriors, sample them, check their
calibration.

Tools: ``sbi_train`` (NPE / NLE / NRE on a task's simulations → a ``posterior`` artifact), ``sbi_posterior``
(samples, MAP, credible intervals and a corner plot for one observation), ``sbi_diagnostics`` (SBC, TARP,
posterior predictive check, L-C2ST, coverage against a likelihood interval).
"""

from physagent.tools.sbi import diagnostics, posterior, train  # noqa: F401  (registers the tools)
