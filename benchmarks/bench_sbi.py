r"""SBI on the sbibm benchmark tasks: C2ST against the reference posterior and training time, beside sbibm.

For each task (two moons, Gaussian linear, SLCP), method and simulation budget, ``sbi_train`` trains one
amortized posterior (seed 0) and ``sbi_posterior`` draws 10⁴ samples for stored observations 1 … n; the
C2ST of those samples against the task's reference posterior (sbibm's MLP classifier, 5-fold) is averaged
over the observations. 0.5 means indistinguishable from the true posterior, 1.0 fully separable.

Published values are the sbibm paper's (Lueckmann et al. 2021, AISTATS, Fig. 2; mean over its 10
observations) where the issue quotes them. Our observations are regenerated locally from fixed seeds, not
sbibm's files, so the comparison is at equal budgets on the same task definitions, not on the same x_o.

    python benchmarks/bench_sbi.py                                  # NPE, 10³ and 10⁴, 3 observations
    python benchmarks/bench_sbi.py --methods NPE,NLE --tasks slcp   # NLE samples by MCMC: slow
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from physagent.tools import Workspace, call_tool
from physagent.tools.sbi import posterior as posterior_tool

# (task, method, simulations) → sbibm's published C2ST
PUBLISHED = {("two_moons", "NPE", 10_000): 0.606, ("slcp", "NPE", 10_000): 0.901,
             ("gaussian_linear", "NPE", 10_000): 0.552, ("slcp", "NLE", 10_000): 0.771}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="two_moons,gaussian_linear,slcp")
    parser.add_argument("--methods", default="NPE")
    parser.add_argument("--estimator", default="auto", help="density_estimator of sbi_train (sbibm's NPE used nsf)")
    parser.add_argument("--budgets", default="1000,10000", help="comma-separated numbers of simulations")
    parser.add_argument("--observations", type=int, default=3, help="stored observations 1 … n per posterior")
    parser.add_argument("--samples", type=int, default=10_000, help="posterior samples per observation")
    args = parser.parse_args()
    # sbi_posterior caps its C2ST at 2000 samples per side to stay interactive; sbibm's figures use 10⁴.
    posterior_tool.MAX_C2ST_SAMPLES = args.samples
    print(f"{'task':<16} {'method':<6} {'sims':>6} {'C2ST':>14} {'sbibm':>6} {'train s':>8} {'epochs':>6}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-sbi-") as home:
        workspace = Workspace(Path(home))
        for task in args.tasks.split(","):
            for method in args.methods.split(","):
                for budget in (int(b) for b in args.budgets.split(",")):
                    _row(workspace, task, method, budget, args.observations, args.samples, args.estimator)


def _row(workspace: Workspace, task: str, method: str, budget: int, n_observations: int, n_samples: int,
         estimator: str) -> None:
    start = time.perf_counter()
    trained = call_tool("sbi_train", {"task": task, "method": method, "num_simulations": budget, "seed": 0,
                                      "density_estimator": estimator}, workspace=workspace).result
    train_s = time.perf_counter() - start
    scores = []
    for number in range(1, n_observations + 1):
        result = call_tool("sbi_posterior", {"posterior": trained.posterior.id, "observation_number": number,
                                             "num_samples": n_samples, "seed": number}, workspace=workspace).result
        scores.append(result.c2st_vs_reference)
    spread = f"{statistics.mean(scores):.3f}±{statistics.pstdev(scores):.3f}"
    published = PUBLISHED.get((task, method, budget))
    print(f"{task:<16} {method + '/' + estimator:<6} {budget:>6} {spread:>14} {published if published else '—':>6} "
          f"{train_s:>8.1f} {trained.epochs_trained:>6}", flush=True)


if __name__ == "__main__":
    main()
