r"""The BDT path: a substructure BDT through conifer (:mod:`tools.fpga._conifer`, arXiv:2002.02534).

conifer's C++ emulation backend builds the bit-accurate model of the firmware; its project (``bdt.json``,
``bridge.cpp``) is the artifact's project directory. One type serves inputs, thresholds, leaf scores and
their sum, so the integer bits must hold the largest jet feature (masses in GeV, constituent counts) as
well as the log-odds. conifer's warnings (values outside the type's range) are collected for the result.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools.fpga._profile import LayerProfile

__all__ = ["CompiledBdt", "bdt_profiles", "compile_bdt"]


@dataclass
class CompiledBdt:
    """A compiled conifer model and what it took."""

    tool: str
    model: Any
    precision: str
    layers: list[dict[str, Any]]
    config: dict[str, Any]
    compile_s: float
    warnings: list[str] = field(default_factory=list)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Emulated log-odds (n, 1); conifer's range warnings are kept in :attr:`warnings`."""
        from physagent.tools.fpga._conifer import emulate_decision

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = emulate_decision(self.model, x, tool=self.tool)
        self.warnings += _messages(caught)
        return out.reshape(-1, 1)


def compile_bdt(tool: str, bdt: Any, precision: str, output_dir: Path) -> CompiledBdt:
    """Convert and compile ``bdt`` with conifer at ``precision`` into ``output_dir``."""
    from physagent.tools.fpga._conifer import convert_bdt, hgb_to_conifer_dict

    ensemble = hgb_to_conifer_dict(bdt, tool=tool)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = convert_bdt(bdt, precision, output_dir, tool=tool)
    summary = {key: ensemble[key] for key in ("n_trees", "max_depth", "n_features", "splitting_convention")}
    layers = [{"name": "ensemble", "layer_type": f"BDT, {summary['n_trees']} trees of depth ≤ {summary['max_depth']}",
               "precision": {"input": precision, "threshold": precision, "score": precision}, "reuse_factor": 1}]
    config = {"converter": "conifer", "backend": "cpp", "project_name": "bdt", "precision": precision,
              "ensemble": summary}
    return CompiledBdt(tool, model, precision, layers, config, time.perf_counter() - start, _messages(caught))


def _messages(caught: list[Any]) -> list[str]:
    return list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))


def bdt_profiles(bdt: Any, x: np.ndarray) -> list[LayerProfile]:
    """Input features, split thresholds, leaf scores and the summed log-odds: every value the one type holds."""
    from physagent.tools.fpga._conifer import hgb_to_conifer_dict

    trees = [tree for iteration in hgb_to_conifer_dict(bdt)["trees"] for tree in iteration]
    feature = [np.asarray(t["feature"]) for t in trees]
    thresholds = np.concatenate([np.asarray(t["threshold"])[f >= 0] for t, f in zip(trees, feature, strict=True)])
    leaves = np.concatenate([np.asarray(t["value"])[f < 0] for t, f in zip(trees, feature, strict=True)])
    return [LayerProfile("input", "jet features", "input", np.asarray(x, np.float64).ravel(), True),
            LayerProfile("ensemble", "BDT", "threshold", thresholds, True),
            LayerProfile("ensemble", "BDT", "leaf score", leaves, True),
            LayerProfile("ensemble", "BDT", "output", np.asarray(bdt.decision_function(x), np.float64), True)]
