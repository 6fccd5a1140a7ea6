r"""Which generated particles leave no trace: one rule for the detector, the jet clustering and event shapes.

Neutrinos (ν_e, ν_μ, ν_τ), the lightest neutralino χ̃⁰₁ (the usual R-parity-conserving LSP) and the gravitino
G̃ (the LSP of gauge-mediated models) cross a detector unseen, so the detector records no hit for them and
jets are not built from them: a truth jet with an LSP in it would have a mass and pT no measurement sees.
Pythia's own ``isVisible`` is no substitute: it also says False for Z, W and Higgs bosons and unknown ids.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INVISIBLE_PIDS", "is_invisible"]

INVISIBLE_PIDS = (12, 14, 16, 1000022, 1000039)  # |PDG id|: ν_e, ν_μ, ν_τ, χ̃⁰₁, G̃


def is_invisible(pid: Any) -> Any:
    """Element-wise: whether |pid| is invisible (numpy or awkward arrays, jagged or not)."""
    absolute = abs(pid)
    found = absolute == INVISIBLE_PIDS[0]
    for invisible in INVISIBLE_PIDS[1:]:
        found = found | (absolute == invisible)
    return found
