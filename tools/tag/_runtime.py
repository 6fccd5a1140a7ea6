r"""Where and on how many threads taggers train and score: the device, and the torch/OpenMP thread pools.

Shared by training (:mod:`tools.tag._training`) and scoring (:mod:`tools.tag._inference`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from physagent.tools._workers import worker_count

__all__ = ["device", "torch_threads"]


def device() -> str:
    """``cuda`` when a GPU is usable, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def torch_threads() -> Iterator[int]:
    """Limit torch and the OpenMP/BLAS pools (sklearn) to :func:`~physagent.tools.worker_count` threads, then restore.

    That is ``PHYSAGENT_WORKERS`` if set, else one thread per available core. The count changes the
    floating-point summation order, so it is fixed per machine (recorded in the model card) rather than
    adapted to the load. On a machine shared with other busy processes set ``PHYSAGENT_WORKERS=1``:
    spin-waiting OpenMP threads on occupied cores made training 5–40× slower than one thread here
    (load 7 on 2 cores).
    """
    import torch
    from threadpoolctl import threadpool_limits

    wanted = worker_count()
    before = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        with threadpool_limits(limits=wanted):
            yield wanted
    finally:
        torch.set_num_threads(before)
