r"""Start-up overhead of the code sandbox against a plain subprocess.

For a trivial script (``pass``) and for ``import numpy, awkward``, the median wall time of

- a plain ``subprocess.run([python, "-I", "-c", code])`` (no isolation),
- :class:`tools.code.Sandbox` with bubblewrap (namespaces, mounts, rlimits, cgroup, supervision),
- :class:`tools.code.Sandbox` with the forced fallback (``unshare`` or a plain process),
- the whole ``run_python`` tool call (static checks, staging, validation, provenance record).

The overhead is the sandbox's median minus the plain subprocess's. Target: < 150 ms with bwrap.

    python benchmarks/bench_sandbox.py [--repeats 21]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from physagent.tools import Workspace, call_tool
from physagent.tools.code import Limits, Sandbox

SCRIPTS = {"trivial": "pass", "numpy+awkward": "import numpy, awkward"}


def medians_ms(actions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each action in milliseconds, sampled round-robin (the machine's load drifts)."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for action in actions.values():
        action()  # warm-up
    for _ in range(repeats):
        for name, action in actions.items():
            start = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(samples) for name, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        out.mkdir()
        workspace = Workspace(Path(scratch) / "ws")
        sandboxes = {"bwrap": Sandbox("bwrap"), "fallback": Sandbox("fallback")}
        print(f"fallback here: {sandboxes['fallback'].isolation.describe()}")
        print(f"{'script':15} {'plain':>9} {'bwrap':>9} {'overhead':>9} {'fallback':>9} {'overhead':>9} "
              f"{'run_python':>11}")
        for name, code in SCRIPTS.items():
            argv = [sys.executable, "-I", "-c", code]
            actions: dict[str, Callable[[], object]] = {"plain": lambda argv=argv: subprocess.run(argv, check=True)}
            for mode, sandbox in sandboxes.items():
                actions[mode] = lambda s=sandbox, argv=argv: s.run(argv, output_dir=out, mounts=[], env={},
                                                                   limits=Limits())
            actions["tool"] = lambda code=code: call_tool("run_python", {"code": code}, workspace=workspace)
            ms = medians_ms(actions, args.repeats)
            print(f"{name:15} {ms['plain']:7.0f}ms {ms['bwrap']:7.0f}ms {ms['bwrap'] - ms['plain']:+7.0f}ms "
                  f"{ms['fallback']:7.0f}ms {ms['fallback'] - ms['plain']:+7.0f}ms {ms['tool']:9.0f}ms")


if __name__ == "__main__":
    main()
