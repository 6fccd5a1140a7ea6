"""The early-stopping epoch loop every trained model shares (taggers, generators)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

from physagent.tools._context import ToolContext

__all__ = ["early_stopping_epochs"]


def early_stopping_epochs(ctx: ToolContext, task: str, model: Any, epochs: int, patience: int,
                          run_epoch: Callable[[], dict[str, float]], describe: Callable[[dict[str, float]], str]
                          ) -> tuple[list[dict[str, float]], dict[str, Any], int]:
    """Run up to ``epochs`` epochs, keeping the weights of the lowest ``val_loss``.

    ``run_epoch`` trains one epoch and returns its metrics (``val_loss`` among them); ``describe`` turns
    them into the progress bar's text. Stops after ``patience`` epochs without a lower validation loss
    (0: never). Returns the per-epoch history (with ``epoch`` and ``wall_s``), the best state dict and its epoch.
    """
    history: list[dict[str, float]] = []
    best = (math.inf, copy.deepcopy(model.state_dict()), 0)
    with ctx.progress(task, total=epochs, unit="epochs") as bar:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            row = {"epoch": epoch, **run_epoch()}
            row["wall_s"] = time.perf_counter() - started
            history.append(row)
            if row["val_loss"] < best[0]:
                best = (row["val_loss"], copy.deepcopy(model.state_dict()), epoch)
            bar.unit = f"epochs ({describe(row)})"
            bar.advance()
            if patience and epoch - best[2] >= patience:
                break
    return history, best[1], best[2]
