r"""How many workers physagent runs in parallel: ``PHYSAGENT_WORKERS``, else the cores it may use.

One count for every parallel part: Pythia processes in ``generate_events`` and ``make_jet_dataset``,
torch/OpenMP threads when taggers train and score, llama.cpp threads of the embedded model.
"""

from __future__ import annotations

import os

from physagent.tools._errors import ToolInputError

__all__ = ["WORKERS_VARIABLE", "worker_count"]

WORKERS_VARIABLE = "PHYSAGENT_WORKERS"


def worker_count() -> int:
    """Workers to run: ``PHYSAGENT_WORKERS`` if set, else the cores this process may run on, at least 1.

    The cores come from ``os.sched_getaffinity`` where the OS has it (Linux), which respects ``taskset``
    and cgroup CPU pinning, unlike ``os.cpu_count()`` (the fallback elsewhere).

    Returns:
        A positive worker count.

    Raises:
        ToolInputError: ``PHYSAGENT_WORKERS`` is set but is not a positive integer.
    """
    raw = os.environ.get(WORKERS_VARIABLE, "").strip()
    if not raw:
        return _usable_cores()
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ToolInputError(
            f"{WORKERS_VARIABLE}={raw!r} is not a positive integer; it sets how many worker processes or "
            f"threads physagent runs. Set it to a whole number of at least 1 (e.g. {WORKERS_VARIABLE}=2), "
            "or unset it to use every core this process may run on.")
    return count


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: respects taskset/cgroup pinning, unlike os.cpu_count()
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
