"""The BDT → conifer export: the float mapping is exact, the fixed-point emulation follows its precision."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from physagent.tools._errors import ToolDependencyError, ToolInputError
from physagent.tools.fpga import _conifer
from physagent.tools.fpga._conifer import convert_bdt, emulate_decision, hgb_to_conifer_dict

N_TREES = 20
WIDE, NARROW = "ap_fixed<32,16>", "ap_fixed<8,3>"


def _jets(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Eight features in [-3, 3] (inside ap_fixed<8,3>'s range), a non-linear label with noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, size=(n, 8))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 - x[:, 2] + rng.normal(0.0, 1.0, n) > 1.0).astype(int)
    return x, y


def _hgb(x: np.ndarray, y: np.ndarray, **options: Any) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=N_TREES, max_leaf_nodes=8, early_stopping=False,
                                          random_state=0, **options).fit(x, y)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    x, y = _jets(seed=1)
    x_test, y_test = _jets(seed=2)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="module")
def bdt(data: dict[str, np.ndarray]) -> HistGradientBoostingClassifier:
    return _hgb(data["x"], data["y"])


@pytest.fixture(scope="module")
def wide(bdt: HistGradientBoostingClassifier, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The model compiled at ap_fixed<32,16> (~20 s of g++), with the environment seen around the compile."""
    before = dict(os.environ)
    model = convert_bdt(bdt, WIDE, tmp_path_factory.mktemp("wide") / "prj")
    return {"model": model, "env_before": before, "env_after": dict(os.environ)}


def _float_decision(ensemble: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Evaluate a conifer ensemble dictionary in float64: walk each tree with x <= threshold → left."""
    total = np.full(len(x), ensemble["init_predict"][0])
    for (tree,) in ensemble["trees"]:
        for row, features in enumerate(x):
            node = 0
            while tree["feature"][node] != -2:
                left = features[tree["feature"][node]] <= tree["threshold"][node]
                node = tree["children_left"][node] if left else tree["children_right"][node]
            total[row] += tree["value"][node]
    return total


def test_dictionary_reproduces_the_sklearn_decision_function_in_float(
        bdt: HistGradientBoostingClassifier, data: dict[str, np.ndarray]) -> None:
    """Walking the dictionary's trees in float gives sklearn's log-odds to rounding, on unseen jets too."""
    ensemble = hgb_to_conifer_dict(bdt)
    assert ensemble["n_trees"] == N_TREES == len(ensemble["trees"])
    assert ensemble["splitting_convention"] == "<="
    for x in (data["x"], data["x_test"]):
        np.testing.assert_allclose(_float_decision(ensemble, x), bdt.decision_function(x), rtol=0, atol=1e-12)


def test_conifer_accepts_the_dictionary_and_agrees_in_float(
        bdt: HistGradientBoostingClassifier, data: dict[str, np.ndarray]) -> None:
    """conifer's own float evaluator (python backend) reads the dictionary and gives the same log-odds."""
    from conifer.model import make_model

    model = make_model(hgb_to_conifer_dict(bdt))
    np.testing.assert_allclose(model.decision_function(data["x_test"]), bdt.decision_function(data["x_test"]),
                               rtol=0, atol=1e-12)


@pytest.mark.slow
def test_wide_precision_emulation_matches_float(
        bdt: HistGradientBoostingClassifier, wide: dict[str, Any], data: dict[str, np.ndarray]) -> None:
    """At ap_fixed<32,16> every score is within one LSB per tree of float and the AUC is unchanged."""
    emulated = emulate_decision(wide["model"], data["x_test"])
    reference = bdt.decision_function(data["x_test"])
    assert emulated.shape == (len(data["x_test"]),)
    np.testing.assert_allclose(emulated, reference, rtol=0, atol=(N_TREES + 1) * 2.0**-16)
    auc_float = roc_auc_score(data["y_test"], reference)
    assert auc_float > 0.8
    assert roc_auc_score(data["y_test"], emulated) == pytest.approx(auc_float, abs=1e-3)


@pytest.mark.slow
def test_compile_leaves_the_environment_as_it_was(wide: dict[str, Any]) -> None:
    """The include paths set for g++ (XILINX_AP_INCLUDE, CPLUS_INCLUDE_PATH) are gone after the compile."""
    assert wide["env_after"] == wide["env_before"]


@pytest.mark.slow
def test_project_holds_the_cpp_sources_and_the_model_json(wide: dict[str, Any]) -> None:
    """The output folder has bridge.cpp with the ap_fixed typedefs, bdt.json with all trees, and the bridge."""
    folder = Path(wide["model"].config.output_dir)
    bridge = (folder / "bridge.cpp").read_text()
    assert f"typedef {WIDE} input_t;" in bridge
    assert f"typedef {WIDE} score_t;" in bridge
    saved = json.loads((folder / "bdt.json").read_text())
    assert saved["n_trees"] == N_TREES
    assert saved["config"]["backend"] == "cpp"
    assert len(list(folder.glob("conifer_bridge_*.so"))) == 1


@pytest.mark.slow
def test_narrow_precision_deviates_measurably_and_compiles_quietly(
        bdt: HistGradientBoostingClassifier, data: dict[str, np.ndarray], tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """At ap_fixed<8,3> (LSB 1/32) scores move by tenths; g++ prints nothing on stdout or stderr."""
    model = convert_bdt(bdt, NARROW, tmp_path / "prj")
    printed = capfd.readouterr()
    assert (printed.out, printed.err) == ("", "")
    emulated = emulate_decision(model, data["x_test"])
    deviation = np.abs(emulated - bdt.decision_function(data["x_test"]))
    assert deviation.max() > 0.1
    assert np.mean(deviation > 2.0**-5) > 0.5
    assert np.all(np.abs(emulated / 2.0**-5 - np.round(emulated / 2.0**-5)) < 1e-9)  # on the 1/32 grid
    with pytest.warns(UserWarning, match=r"features \[0, 1, 2, 3, 4, 5, 6, 7\] have values outside \[-4, 3.96875\]"):
        emulate_decision(model, 10.0 * data["x_test"][:5])


def test_multiclass_model_is_refused(data: dict[str, np.ndarray]) -> None:
    """A three-class HGB (three trees per iteration) is refused with a message naming the fix."""
    three_classes = np.digitize(data["x"][:, 0], [-1.0, 1.0])
    with pytest.raises(ToolInputError, match=r"multiclass model.*Train a signal-vs-background tagger") as error:
        hgb_to_conifer_dict(_hgb(data["x"], three_classes))
    assert error.value.param == "bdt"


def test_categorical_splits_and_missing_value_splits_are_refused(data: dict[str, np.ndarray]) -> None:
    """Categorical splits and splits that send NaN one way cannot be expressed in fixed point."""
    x = data["x"].copy()
    x[:, 3] = np.floor(x[:, 3] + 3.0)
    with pytest.raises(ToolInputError, match="categorical splits"):
        hgb_to_conifer_dict(_hgb(x, data["y"], categorical_features=[3]))
    x = data["x"].copy()
    x[data["y"] == 1, 5] = np.nan
    with pytest.raises(ToolInputError, match=r"routes missing values \(NaN\)"):
        hgb_to_conifer_dict(_hgb(x, data["y"]))


def test_unfitted_or_foreign_models_are_refused() -> None:
    """Only a fitted HistGradientBoostingClassifier passes."""
    with pytest.raises(ToolInputError, match="is not a fitted HistGradientBoostingClassifier"):
        hgb_to_conifer_dict(HistGradientBoostingClassifier())


@pytest.mark.parametrize(("precision", "problem"), [
    ("float", "is not of the form ap_fixed<W,I>"),
    ("ap_fixed<8,3>;system(\"rm\")", "is not of the form ap_fixed<W,I>"),
    ("ap_fixed<8,1>", "needs 2 <= I <= W <= 64"),
    ("ap_fixed<80,8>", "needs 2 <= I <= W <= 64"),
    ("ap_fixed<16,6,AP_ROUND,AP_SAT>", "has unknown modes"),
])
def test_malformed_precision_is_refused_before_anything_is_written(
        bdt: HistGradientBoostingClassifier, tmp_path: Path, precision: str, problem: str) -> None:
    """The precision goes verbatim into C++, so only ap_fixed<W,I[,Q,O]> with 2 <= I <= W <= 64 passes."""
    with pytest.raises(ToolInputError, match=problem):
        convert_bdt(bdt, precision, tmp_path / "prj")
    assert not (tmp_path / "prj").exists()


def test_unrepresentable_thresholds_warn(
        data: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Split thresholds beyond ap_fixed<8,3>'s range (features of order 30) warn that they wrap."""
    monkeypatch.setattr(_conifer, "_compile", lambda model, tool: None)  # the check comes before g++
    with pytest.warns(UserWarning, match=r"holds values in \[-4, 3.96875\].*split thresholds.*wrap or saturate"):
        convert_bdt(_hgb(10.0 * data["x"], data["y"]), NARROW, tmp_path / "prj")


def test_missing_json_headers_name_the_install_command(
        bdt: HistGradientBoostingClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nlohmann/json anywhere, the error says how to install it, and the environment is untouched."""
    real = _conifer._package_dir
    monkeypatch.setattr(_conifer, "_package_dir", lambda name: None if name == "nlohmann_json" else real(name))
    monkeypatch.setattr(_conifer, "_SYSTEM_INCLUDES", ())
    monkeypatch.delenv("JSON_ROOT", raising=False)
    before = dict(os.environ)
    with pytest.raises(ToolDependencyError, match="pip install nlohmann-json"):
        convert_bdt(bdt, WIDE, tmp_path / "prj")
    assert dict(os.environ) == before
