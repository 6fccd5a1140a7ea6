"""sbi_train: NPE on Gaussian-linear matches the analytic posterior, the artifact reloads to identical samples in
a fresh process, NLE and NRE train and sample, user code runs sandboxed, and bad inputs are refused clearly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from physagent.tools import CallOutcome, ToolContext, ToolInputError, Workspace, call_tool
from physagent.tools.sbi._artifact import load_posterior, read_npz, sample_posterior

#: NPE on gaussian_linear with 10³ simulations, sbi's training defaults (about 100 epochs, early stopping).
NPE_GAUSSIAN_LINEAR: dict[str, Any] = {"task": "gaussian_linear", "num_simulations": 1000, "seed": 1}
TINY: dict[str, Any] = {"num_simulations": 200, "max_epochs": 3, "seed": 2}
#: θ = (mu, sigma); x = 3 draws of N(mu, sigma); NaN rows where mu < -1 (a quarter of the prior).
GAUSSIAN_CODE = textwrap.dedent("""
    import numpy as np

    def simulate(theta, rng):
        mu, sigma = theta[:, :1], theta[:, 1:2]
        x = mu + sigma * rng.standard_normal((len(theta), 3))
        x[theta[:, 0] < -1.0] = np.nan
        return x
""")
GAUSSIAN_PRIOR = [{"name": "mu", "distribution": "uniform", "low": -2.0, "high": 2.0, "unit": "GeV"},
                  {"name": "sigma", "distribution": "uniform", "low": 0.5, "high": 1.5, "unit": "GeV"}]


@pytest.fixture(scope="module")
def npe(shared_workspace: Workspace) -> CallOutcome:
    """NPE (MAF) trained on 10³ Gaussian-linear simulations (shared with test_sbi_posterior through the cache)."""
    return call_tool("sbi_train", NPE_GAUSSIAN_LINEAR, workspace=shared_workspace)


def loaded_samples(workspace: Workspace, posterior_id: str, x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Samples of a posterior artifact loaded afresh (a new ToolContext, as another tool would)."""
    with workspace.staging_area() as staging:
        loaded = load_posterior(ToolContext("test", workspace, staging), posterior_id)
        return sample_posterior(loaded, x, n, seed)


def test_npe_trains_on_gaussian_linear_and_writes_a_complete_artifact(npe: CallOutcome) -> None:
    """Every simulation is used, training stops early, and the card records what rebuilds the posterior."""
    result = npe.result
    assert result.method == "NPE" and result.task == "gaussian_linear"
    assert result.parameter_names == [f"theta_{i}" for i in range(1, 11)] and len(result.observables) == 10
    assert result.num_simulations_used == 1000 and result.n_failed_simulations == 0
    assert result.converged and 20 < result.epochs_trained < 300
    # the exact posterior N(x/2, 0.05 I) has mean log density 10 · (-½ ln(2π·0.05) - ½) ≈ 1.8 nats
    assert -5.0 < result.best_validation_log_prob < 1.8
    artifact = result.posterior
    assert artifact.kind == "posterior" and artifact.id.startswith("post-")
    assert {"posterior.pt", "card.json", "simulations.npz", "training_curve.png"} <= set(artifact.files)
    card = json.loads((artifact.directory / "card.json").read_text())
    assert card["method"] == "NPE" and card["network"]["estimator"] == "maf"
    assert card["task"] == {"name": "gaussian_linear", "options": {}}
    assert card["prior"]["source"] == "task" and card["prior"]["spec"][0]["distribution"] == "gaussian"
    assert card["prior"]["spec"][0]["std"] == pytest.approx(0.1**0.5)
    assert card["simulations"] == {"requested": 1000, "used": 1000, "failed": 0, "theta_seed": 1,
                                   "simulator_seed": card["simulations"]["simulator_seed"], "file": "simulations.npz"}
    assert len(card["training"]["history"]) == result.epochs_trained and "timing" not in card
    assert card["packages"]["sbi"] == "0.27.0"
    stored = read_npz(artifact.directory / "simulations.npz")
    assert stored["theta"].shape == stored["x"].shape == (1000, 10)


def test_saved_posterior_gives_identical_samples_in_a_fresh_process(npe: CallOutcome, shared_workspace: Workspace,
                                                                    tmp_path: Path) -> None:
    """Loading posterior.pt in a new Python process and sampling with the same seed repeats the samples exactly."""
    x_o = np.linspace(-0.5, 0.5, 10)
    here = loaded_samples(shared_workspace, npe.result.posterior.id, x_o, 300, seed=11)
    assert here.shape == (300, 10) and here.dtype == np.float64
    again = loaded_samples(shared_workspace, npe.result.posterior.id, x_o, 300, seed=11)
    other_seed = loaded_samples(shared_workspace, npe.result.posterior.id, x_o, 300, seed=12)
    np.testing.assert_array_equal(here, again)
    assert not np.array_equal(here, other_seed)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from physagent.tools import ToolContext, Workspace
        from physagent.tools.sbi._artifact import load_posterior, sample_posterior
        workspace = Workspace(sys.argv[1])
        with workspace.staging_area() as staging:
            loaded = load_posterior(ToolContext("test", workspace, staging), {npe.result.posterior.id!r})
            np.save(sys.argv[2], sample_posterior(loaded, np.linspace(-0.5, 0.5, 10), 300, 11))
    """)
    out = tmp_path / "samples.npy"
    subprocess.run([sys.executable, "-c", script, str(shared_workspace.root), str(out)], check=True,
                   capture_output=True, text=True)
    np.testing.assert_array_equal(np.load(out), here)


@pytest.mark.parametrize(("method", "estimator"), [("NLE", "auto"), ("NRE", "mlp")])
def test_nle_and_nre_train_and_sample_by_mcmc(workspace: Workspace, method: str, estimator: str) -> None:
    """NLE (MAF likelihood) and NRE (classifier) train on two moons and give finite samples inside the prior."""
    result = call_tool("sbi_train", {"task": "two_moons", "method": method, "density_estimator": estimator, **TINY},
                       workspace=workspace).result
    assert result.method == method and result.epochs_trained == 3 and not result.converged
    card = json.loads((result.posterior.directory / "card.json").read_text())
    assert card["network"]["estimator"] == ("maf" if method == "NLE" else "mlp")
    assert card["sampling"]["mcmc"]["method"] == "slice_np_vectorized"
    samples = loaded_samples(workspace, result.posterior.id, np.array([0.0, 0.1]), 200, seed=0)
    assert samples.shape == (200, 2) and np.all(np.isfinite(samples))
    assert np.all(np.abs(samples) <= 1.0)  # two moons' prior is U(-1, 1)²


def test_custom_sandboxed_simulator_drops_nan_rows_with_a_count(workspace: Workspace) -> None:
    """User code runs in the sandbox; its NaN rows (θ where mu < -1) are dropped and counted."""
    result = call_tool("sbi_train", {"task": "custom", "simulator_code": GAUSSIAN_CODE, "prior": GAUSSIAN_PRIOR,
                                     "observables": ["x_a", "x_b", "x_c"], "task_options": {"batch_size": 150},
                                     **TINY}, workspace=workspace).result
    assert result.task == "custom" and result.parameter_names == ["mu", "sigma"]
    assert result.parameter_units == ["GeV", "GeV"] and result.observables == ["x_a", "x_b", "x_c"]
    assert 20 < result.n_failed_simulations < 80  # a quarter of 200
    assert result.num_simulations_used + result.n_failed_simulations == 200
    directory = result.posterior.directory
    assert (directory / "simulator.py").read_text() == GAUSSIAN_CODE
    card = json.loads((directory / "card.json").read_text())
    assert card["simulator"]["kind"] == "sandboxed user code" and card["prior"]["source"] == "given"
    assert card["task"]["options"] == {"batch_size": 150, "timeout_s": 120.0}
    stored = read_npz(directory / "simulations.npz")
    assert len(stored["theta_failed"]) == result.n_failed_simulations and np.all(stored["theta_failed"][:, 0] < -1)


def test_a_simulator_failing_on_most_rows_is_refused(no_workspace_writes: Workspace) -> None:
    """All-NaN output trains nothing: the error counts the failures and says what to fix."""
    code = "import numpy as np\n\ndef simulate(theta, rng):\n    return np.full((len(theta), 2), np.nan)\n"
    with pytest.raises(ToolInputError) as info:
        call_tool("sbi_train", {"task": "custom", "simulator_code": code, "prior": GAUSSIAN_PRIOR, **TINY},
                  workspace=no_workspace_writes)
    assert "200 of 200 simulations returned NaN or ±inf" in str(info.value) and info.value.param == "simulator_code"


def test_a_crashing_simulator_reports_its_traceback(no_workspace_writes: Workspace) -> None:
    """An exception in simulate() comes back with the traceback's tail, pointing at simulator_code."""
    code = "def simulate(theta, rng):\n    raise RuntimeError('detector map missing')\n"
    with pytest.raises(ToolInputError) as info:
        call_tool("sbi_train", {"task": "custom", "simulator_code": code, "prior": GAUSSIAN_PRIOR, **TINY},
                  workspace=no_workspace_writes)
    message = str(info.value)
    assert "simulator_code failed on rows 1–200" in message and "RuntimeError: detector map missing" in message


@pytest.mark.parametrize(("arguments", "param", "words"), [
    ({"task": "two_moons", "prior": GAUSSIAN_PRIOR[:1]}, "prior",
     ["prior of wrong dimension", "1 parameter(s)", "has 2: theta_1, theta_2"]),
    ({"task": "two_moons", "prior": [{**GAUSSIAN_PRIOR[0], "name": "a"}, {**GAUSSIAN_PRIOR[1], "name": "b"}]},
     "prior", ["does not name the parameters", "expected theta_1, theta_2"]),
    ({"task": "gaussian_linear", "task_options": {"noise": 0.2}}, "task_options", ["not accepted", "noise"]),
    ({"task": "custom", "simulator_code": GAUSSIAN_CODE}, "task", ["needs prior"]),
    ({"task": "two_moons", "simulator_code": GAUSSIAN_CODE}, "simulator_code", ["only for task='custom'"]),
    ({"task": "two_moons", "method": "NRE", "density_estimator": "maf"}, "density_estimator",
     ["not a classifier for NRE", "resnet, mlp"]),
    ({"task": "two_moons", "method": "NLE", "embedding": "mlp"}, "embedding", ["does not apply to NLE"]),
    ({"task": "custom", "simulator_code": "def run(theta):\n    return theta\n", "prior": GAUSSIAN_PRIOR},
     "simulator_code", ["defines no top-level function simulate"]),
    ({"task": "custom", "simulator_code": "def simulate(theta, rng:\n", "prior": GAUSSIAN_PRIOR},
     "simulator_code", ["syntax error on line 1"]),
])
def test_bad_inputs_are_refused_before_any_simulation(no_workspace_writes: Workspace, arguments: dict[str, Any],
                                                      param: str, words: list[str]) -> None:
    """Wrong prior dimension or names, unknown options and mismatched settings name the parameter and the fix."""
    with pytest.raises(ToolInputError) as info:
        call_tool("sbi_train", {**TINY, **arguments}, workspace=no_workspace_writes)
    assert info.value.param == param, str(info.value)
    for word in words:
        assert word in str(info.value)


def test_an_incomplete_prior_entry_is_refused_by_validation(no_workspace_writes: Workspace) -> None:
    """A uniform prior without high, or with low ≥ high, fails schema validation with the reason."""
    for entry, reason in (({"name": "mu", "distribution": "uniform", "low": 0.0}, "takes low and high"),
                          ({"name": "mu", "distribution": "uniform", "low": 1.0, "high": 0.0}, "needs low < high")):
        with pytest.raises(ToolInputError, match=reason):
            call_tool("sbi_train", {"task": "custom", "simulator_code": GAUSSIAN_CODE, "prior": [entry]},
                      workspace=no_workspace_writes)
