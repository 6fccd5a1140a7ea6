r"""The BDT tagger in FPGA firmware: scikit-learn's HistGradientBoostingClassifier through conifer.

conifer (Summers et al., "Fast inference of Boosted Decision Trees in FPGAs for particle physics",
JINST 15 (2020) P05026, arXiv:2002.02534) turns a tree ensemble into HLS/VHDL firmware in which every
tree is evaluated in parallel: the paper reports BDT inference in about 60 ns
on a Xilinx FPGA. Its scikit-learn converter reads only ``estimators_`` (GradientBoosting, RandomForest),
so this module builds conifer's ensemble dictionary from HistGradientBoosting's own trees.

- :func:`hgb_to_conifer_dict` — the mapping. Boosting iteration i → conifer tree i (one class slot, as
  for any binary model). Per node of ``bdt._predictors[i][0].nodes``: ``feature_idx`` → ``feature``
  (-2 at leaves), ``num_threshold`` → ``threshold``, ``left``/``right`` → ``children_left``/``right``
  (-1 at leaves), leaf ``value`` → ``value`` (sklearn has already multiplied it by the learning rate),
  a one-hot ``weight`` row per split (conifer's axis-aligned form of an oblique cut). The baseline
  log-odds ln(p/(1-p)) of the training labels is ``init_predict``, and the splitting convention is
  sklearn's ``x <= threshold`` → left. Evaluated in float the dictionary reproduces
  ``bdt.decision_function`` (log-odds). Refused: multiclass models, categorical splits, and splits on
  missing values (``num_threshold = +inf``): fixed-point inputs have no NaN, so the firmware cannot
  route them. NaN routing of ordinary splits (``missing_go_to_left``) is dropped for the same reason.
- :func:`convert_bdt` — a compiled conifer model with the C++ emulation backend (``cpp``); its project
  (``bdt.json``, ``bridge.cpp``, the compiled bridge library) is written to ``output_dir``.
- :func:`emulate_decision` — the bit-accurate fixed-point log-odds of that model.

Precision: one type ``ap_fixed<W,I[,Q[,O]]>`` (Xilinx arbitrary-precision types) for inputs, thresholds,
leaf scores and their sum — conifer's cpp backend requires input == threshold precision. ``W`` bits in
all, ``I`` of them integer bits including the sign: values in [-2^(I-1), 2^(I-1) - 2^-(W-I)] on a grid
of 2^-(W-I). The default quantisation ``AP_TRN`` rounds toward -∞ and the default overflow ``AP_WRAP``
wraps around (a log-odds of +5 in ap_fixed<8,3> becomes -3): choose ``I`` to cover the largest
feature value and score, scale the features, or ask for ``AP_SAT``. Values out of range warn.

Headers the emulation compiles against (conifer 1.11's PyPI wheel ships neither): the Xilinx ap_types,
taken from hls4ml (``hls4ml/templates/vivado/ap_types``) through ``XILINX_AP_INCLUDE`` unless the user
set up a Vivado/Vitis toolchain; and nlohmann/json, from the ``nlohmann-json`` PyPI package,
``$JSON_ROOT`` or the system (Debian ``nlohmann-json3-dev``), added to ``CPLUS_INCLUDE_PATH`` — conifer
itself looks only inside its own package. Both variables are set for the compile only.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._errors import ToolDependencyError, ToolInputError, ToolRuntimeError, one_line
from physagent.tools._stdio import capture_fd_stdout

__all__ = ["convert_bdt", "emulate_decision", "hgb_to_conifer_dict"]

PROJECT_NAME = "bdt"  # the project files are bdt.json and bridge.cpp
_QUANTISATION = {"AP_RND", "AP_RND_ZERO", "AP_RND_MIN_INF", "AP_RND_INF", "AP_RND_CONV", "AP_TRN", "AP_TRN_ZERO"}
_OVERFLOW = {"AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM", "AP_WRAP", "AP_WRAP_SM"}
_PRECISION = re.compile(r"ap_fixed<(\d+),(\d+)(?:,(\w+))?(?:,(\w+))?(?:,(\d+))?>")
_MAX_WIDTH = 64
_XILINX_VARS = ("XILINX_AP_INCLUDE", "XILINX_HLS", "XILINX_VIVADO")
_SYSTEM_INCLUDES = (Path("/usr/include"), Path("/usr/local/include"))
# conifer's compile() changes the process's working directory and reads the include paths from the
# environment: one compile at a time
_COMPILE_LOCK = threading.Lock()


class _DropJsonPathWarning(logging.Filter):
    """conifer warns on every compile that its own (unshipped) JSON folder is missing; ours is on the include path."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Could not find JSON headers")


logging.getLogger("conifer.utils.misc").addFilter(_DropJsonPathWarning())


def hgb_to_conifer_dict(bdt: Any, *, tool: str = "hgb_to_conifer_dict") -> dict[str, Any]:
    """conifer's ensemble dictionary for a fitted binary HistGradientBoostingClassifier.

    Args:
        bdt: the fitted classifier (numerical features, two classes).
        tool: the tool named in error messages.

    Returns:
        The dictionary ``conifer.model.make_model`` takes: one tree per boosting iteration,
        ``init_predict`` the baseline log-odds, splitting convention ``<=``.

    Raises:
        ToolInputError: not a fitted HistGradientBoostingClassifier, multiclass, categorical splits,
            or a split on missing values.
    """
    _check_exportable(bdt, tool)
    n_features = int(bdt.n_features_in_)
    trees = [[_tree_dict(iteration[0].nodes, n_features, tool)] for iteration in bdt._predictors]
    names = getattr(bdt, "feature_names_in_", None)
    return {
        "n_classes": 2, "n_features": n_features, "n_trees": len(trees),
        "max_depth": max(int(iteration[0].nodes["depth"].max()) for iteration in bdt._predictors),
        "init_predict": [float(bdt._baseline_prediction.ravel()[0])], "norm": 1,
        "library": "sklearn", "splitting_convention": "<=", "trees": trees,
        "feature_map": {str(name): i for i, name in enumerate(names if names is not None else
                                                              [f"feat_{i}" for i in range(n_features)])},
    }


def _check_exportable(bdt: Any, tool: str) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(bdt, HistGradientBoostingClassifier) or not hasattr(bdt, "_predictors"):
        raise ToolInputError.for_param(tool, "bdt", type(bdt).__name__, "is not a fitted "
                                       "HistGradientBoostingClassifier. Train the tagger with model='bdt' first.")
    if bdt.n_trees_per_iteration_ != 1:
        raise ToolInputError.for_param(
            tool, "bdt", f"{len(bdt.classes_)} classes", "is a multiclass model; the conifer export handles binary "
            "taggers only (one tree per boosting iteration). Train a signal-vs-background tagger.")
    categorical = getattr(bdt, "is_categorical_", None)
    if (categorical is not None and np.any(categorical)) or getattr(bdt, "_preprocessor", None) is not None:
        raise ToolInputError.for_param(
            tool, "bdt", "categorical features", "uses categorical splits, which conifer cannot express. "
            "Train on numerical features only.")


def _tree_dict(nodes: np.ndarray, n_features: int, tool: str) -> dict[str, list[Any]]:
    """One sklearn TreePredictor node array in conifer's tree layout."""
    leaf = nodes["is_leaf"].astype(bool)
    if np.any(nodes["is_categorical"][~leaf]):
        raise ToolInputError.for_param(tool, "bdt", "categorical split", "uses categorical splits, which conifer "
                                       "cannot express. Train on numerical features only.")
    if not np.all(np.isfinite(nodes["num_threshold"][~leaf])):
        raise ToolInputError.for_param(
            tool, "bdt", "split on missing values", "routes missing values (NaN) by a split of its own, which a "
            "fixed-point FPGA input cannot express. Train on jets without NaN features.")
    feature = np.where(leaf, -2, nodes["feature_idx"]).astype(int)
    weight = np.zeros((len(nodes), n_features))
    weight[~leaf, feature[~leaf]] = 1.0
    return {
        "feature": feature.tolist(), "weight": weight.tolist(),
        "threshold": np.where(leaf, -2.0, nodes["num_threshold"]).tolist(),
        "value": np.where(leaf, nodes["value"], 0.0).tolist(),
        "children_left": np.where(leaf, -1, nodes["left"].astype(int)).tolist(),
        "children_right": np.where(leaf, -1, nodes["right"].astype(int)).tolist(),
    }


def convert_bdt(bdt: Any, precision: str, output_dir: Path, *, tool: str = "convert_bdt") -> Any:
    """A compiled conifer model (C++ emulation backend) of ``bdt`` at fixed-point ``precision``.

    Args:
        bdt: a fitted binary HistGradientBoostingClassifier.
        precision: ``ap_fixed<W,I>`` (optionally ``,Q,O``) for inputs, thresholds and scores.
        output_dir: the project folder (created); holds ``bdt.json``, ``bridge.cpp`` and the compiled bridge.
        tool: the tool named in error messages.

    Returns:
        A ``conifer.backends.cpp.CPPModel`` ready for :func:`emulate_decision`.

    Raises:
        ToolInputError: a malformed precision or a model :func:`hgb_to_conifer_dict` refuses.
        ToolDependencyError: conifer or the headers it compiles against are missing.
        ToolRuntimeError: g++ failed (its output is quoted).
    """
    low, high = _precision_range(precision, tool)
    ensemble = hgb_to_conifer_dict(bdt, tool=tool)
    _warn_unrepresentable(ensemble, precision, low, high, tool)
    try:
        from conifer.model import make_model
    except ImportError as exc:
        raise ToolDependencyError(f"{tool}: conifer is not installed ({one_line(exc)}). "
                                  "Install it with `pip install 'conifer>=1.11,<1.12'`.") from exc
    config = {"backend": "cpp", "project_name": PROJECT_NAME, "output_dir": str(output_dir), "precision": precision}
    model = make_model(ensemble, config)
    # conifer names the bridge library by the second; a rebuild within the same second in the same folder
    # would re-open the already-loaded library and silently keep the old model
    model._stamp = time.time_ns()
    _compile(model, tool)
    return model


def _precision_range(precision: str, tool: str) -> tuple[float, float]:
    """The lowest and highest value of an ``ap_fixed<W,I,...>`` type; a malformed one is refused.

    The string goes verbatim into generated C++, so only the documented forms pass."""
    match = _PRECISION.fullmatch(precision.replace(" ", ""))
    if match is None:
        raise _bad_precision(tool, precision, "is not of the form ap_fixed<W,I> (optionally ap_fixed<W,I,Q,O>)")
    width, integer_bits = int(match[1]), int(match[2])
    if not 2 <= integer_bits <= width <= _MAX_WIDTH:
        # conifer multiplies inputs by one-hot split weights of 1.0, which ap_fixed<W,1> cannot hold
        raise _bad_precision(tool, precision, f"needs 2 <= I <= W <= {_MAX_WIDTH}")
    if (match[3] or "AP_TRN") not in _QUANTISATION or (match[4] or "AP_WRAP") not in _OVERFLOW:
        raise _bad_precision(tool, precision, f"has unknown modes: quantisation is one of {sorted(_QUANTISATION)}, "
                             f"overflow one of {sorted(_OVERFLOW)}")
    half = 2.0 ** (integer_bits - 1)
    return -half, half - 2.0 ** -(width - integer_bits)


def _bad_precision(tool: str, precision: str, problem: str) -> ToolInputError:
    return ToolInputError.for_param(tool, "precision", precision, f"{problem}. Use e.g. 'ap_fixed<18,8>'.")


def _warn_unrepresentable(ensemble: dict[str, Any], precision: str, low: float, high: float, tool: str) -> None:
    """Warn when thresholds, leaves, or the largest possible score fall outside the fixed-point range."""
    trees = [tree for iteration in ensemble["trees"] for tree in iteration]
    thresholds = np.concatenate([np.array(t["threshold"])[np.array(t["feature"]) >= 0] for t in trees])
    leaves = np.concatenate([np.array(t["value"])[np.array(t["feature"]) < 0] for t in trees])
    score_bound = abs(ensemble["init_predict"][0]) + sum(np.abs(t["value"]).max() for t in trees)
    outside = {"split thresholds": int(np.sum((thresholds < low) | (thresholds > high))),
               "leaf scores": int(np.sum((leaves < low) | (leaves > high)))}
    found = [f"{n} {what}" for what, n in outside.items() if n]
    if score_bound > high:
        found.append(f"scores up to {score_bound:.3g} in principle")
    if found:
        warnings.warn(f"{tool}: precision={precision!r} holds values in [{low:g}, {high:g}], but the model has "
                      f"{', '.join(found)} outside it: they wrap or saturate. Use more integer bits or scale the "
                      "features.", UserWarning, stacklevel=3)


def _compile(model: Any, tool: str) -> None:
    """Build the emulation with g++; its chatter (fd 1 and 2) is captured and quoted only on failure."""
    failure: Exception | None = None
    with _COMPILE_LOCK, _header_env(tool), capture_fd_stdout() as output, _stderr_to_stdout():
        try:
            model.compile()
        except Exception as exc:  # conifer raises a bare Exception for every failure
            failure = exc
    if failure is not None:
        log = " ".join("".join(output).split())[-600:]
        raise ToolRuntimeError(f"{tool}: g++ could not build the conifer emulation in {model.config.output_dir} "
                               f"({one_line(failure)}). Compiler output: {log or '(none)'}") from failure


@contextmanager
def _stderr_to_stdout() -> Iterator[None]:
    """fd 2 follows fd 1 (the capture) within the block: g++ reports its errors on stderr."""
    saved = os.dup(2)
    os.dup2(1, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def _header_env(tool: str) -> Iterator[None]:
    """Within the block, the environment points conifer's g++ at ap_types and nlohmann/json; restored after."""
    updates: dict[str, str] = {}
    if not any(os.environ.get(name) for name in _XILINX_VARS):
        updates["XILINX_AP_INCLUDE"] = str(_ap_types_dir(tool))
    json_dir = _json_include_dir(tool)
    if json_dir is not None:
        updates["CPLUS_INCLUDE_PATH"] = os.pathsep.join(filter(None, [str(json_dir),
                                                                      os.environ.get("CPLUS_INCLUDE_PATH")]))
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _package_dir(name: str) -> Path | None:
    """An installed package's folder, found without importing it (hls4ml's import is heavy)."""
    spec = find_spec(name)
    locations = spec.submodule_search_locations if spec is not None else None
    return Path(next(iter(locations))) if locations else None


def _ap_types_dir(tool: str) -> Path:
    hls4ml = _package_dir("hls4ml")
    folder = hls4ml / "templates" / "vivado" / "ap_types" if hls4ml is not None else None
    if folder is None or not (folder / "ap_fixed.h").is_file():
        raise ToolDependencyError(f"{tool}: the Xilinx ap_fixed headers were not found (looked in hls4ml's "
                                  "templates). Install hls4ml (`pip install 'hls4ml>=1.3,<1.4'`) or set "
                                  "XILINX_AP_INCLUDE to a folder holding ap_fixed.h.")
    return folder


def _json_include_dir(tool: str) -> Path | None:
    """The folder holding nlohmann/json.hpp, or None when g++ finds it in a system folder anyway."""
    package = _package_dir("nlohmann_json")
    root = os.environ.get("JSON_ROOT")
    candidates = [package / "include"] if package is not None else []
    candidates += [Path(root) / "include", Path(root)] if root else []
    for folder in candidates:
        if (folder / "nlohmann" / "json.hpp").is_file():
            return folder
    if any((folder / "nlohmann" / "json.hpp").is_file() for folder in _SYSTEM_INCLUDES):
        return None
    raise ToolDependencyError(f"{tool}: the conifer C++ emulation needs the nlohmann/json headers, which are not "
                              "installed. Install them with `pip install nlohmann-json` (or Debian's "
                              "`apt-get install nlohmann-json3-dev`), or set JSON_ROOT to their folder.")


def emulate_decision(model: Any, x: np.ndarray, *, tool: str = "emulate_decision") -> np.ndarray:
    """The fixed-point decision function (log-odds) of a compiled conifer model.

    Args:
        model: a model from :func:`convert_bdt`.
        x: features, shape (n, n_features), finite.
        tool: the tool named in error messages.

    Returns:
        The emulated log-odds, shape (n,), as the firmware computes them.

    Raises:
        ToolInputError: an uncompiled model, or ``x`` of the wrong shape or with NaN/inf.
    """
    bridge = getattr(model, "bridge", None)
    if bridge is None:
        raise ToolInputError.for_param(tool, "model", type(model).__name__, "is not a compiled conifer model. "
                                       "Build it with convert_bdt.")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != model.n_features or not np.all(np.isfinite(x)):
        raise ToolInputError.for_param(tool, "x", f"shape {x.shape}", f"must be finite with shape "
                                       f"(n, {model.n_features}). Drop or fix jets with NaN features.")
    _warn_inputs_outside(x, model.config.input_precision, tool)
    # the bridge directly: conifer's decision_function changes the process's working directory per call
    return np.array([bridge.decision_function(row)[0] for row in x.tolist()], dtype=np.float64)


def _warn_inputs_outside(x: np.ndarray, precision: str, tool: str) -> None:
    low, high = _precision_range(precision, tool)
    outside = np.any((x < low) | (x > high), axis=0)
    if np.any(outside):
        warnings.warn(f"{tool}: features {np.flatnonzero(outside).tolist()} have values outside [{low:g}, {high:g}], "
                      f"the range of {precision}: they wrap or saturate. Use more integer bits or scale the features.",
                      UserWarning, stacklevel=3)
