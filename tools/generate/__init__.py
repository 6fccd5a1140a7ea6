r"""Generative surrogates and their validation.

Tools: ``train_generator`` / ``sample_generator`` (conditional normalizing flows, two-stage CaloFlow-style
models — ``caloflow``, the fast-sampling ``calofast`` and ``calohits``, whose sampling cost grows with the
hits of large grids — and a point-cloud flow-matching model) and ``compare_samples`` (per-feature distances,
classifier two-sample test, FPD/KPD, shower observables).
"""

from physagent.tools.generate import compare, sample, train  # noqa: F401  (registers the tools)
