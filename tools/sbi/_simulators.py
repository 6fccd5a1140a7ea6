r"""A user's own simulator as an SBI :class:`~tools.sbi._task.Task`: Python code run in the sandbox.

The code defines ``simulate(theta, rng)``: θ is a float64 array (n, d) in the order and units of the prior,
``rng`` a ``numpy.random.Generator``; it returns x of shape (n, k) (or (n,) for k = 1), NaN in the rows it could
not simulate. Example::

    import numpy as np

    def simulate(theta, rng):
        mu, sigma = theta[:, :1], theta[:, 1:2]
        return mu + sigma * rng.standard_normal((len(theta), 5))

Every batch of rows runs in a fresh process of the sandbox that ``run_python`` uses
(:class:`tools.code._sandbox.Sandbox`: no network, only its working directory writable, wall-time and
memory limits): θ goes in as ``theta.npy``, x comes back as ``x.npy`` (read without pickle). Batch ``b`` of a
call with seed ``s`` gets ``rng = numpy.random.default_rng([s, b])``, so a call is reproducible. A crash
in the code is the caller's to fix (:class:`ToolInputError` with the traceback's tail); a timeout or the
memory limit is a :class:`ToolRuntimeError` saying which option to raise.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from physagent.tools._errors import ToolCancelledError, ToolInputError, ToolRuntimeError
from physagent.tools.sbi._priors import PriorSpec, build_prior, parameters_of
from physagent.tools.sbi._task import N_OBSERVATIONS, Observation, Parameter, observation_seed

__all__ = ["CUSTOM", "SIMULATOR_FILE", "SandboxSimulator", "SimulatorOptions", "check_simulator_code"]

CUSTOM = "custom"
SIMULATOR_FILE = "simulator.py"
_TAIL = 1500  # characters of stderr quoted in an error
_DRIVER = """\
import sys, runpy
import numpy as np
namespace = runpy.run_path(sys.argv[1], run_name="simulator")
theta = np.load("theta.npy", allow_pickle=False)
x = namespace["simulate"](theta, np.random.default_rng([int(sys.argv[2]), int(sys.argv[3])]))
np.save("x.npy", np.asarray(x, dtype=np.float64), allow_pickle=False)
"""


class SimulatorOptions:
    """``task_options`` of a user-code simulator: ``batch_size`` (rows per sandbox run, default 1000) and
    ``timeout_s`` (wall-time limit of one run, default 120 s)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"batch_size": 1000, "timeout_s": 120.0}

    def __init__(self, tool: str, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            raise ToolInputError.for_param(tool, "task_options", options, f"has unknown option(s) "
                                           f"{', '.join(unknown)} for task='custom'; its options are batch_size "
                                           "(rows per sandbox run) and timeout_s (seconds per run).")
        merged = self.DEFAULTS | options
        batch, timeout = merged["batch_size"], merged["timeout_s"]
        if not (isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch <= 1_000_000):
            raise ToolInputError.for_param(tool, "task_options", options, "has batch_size outside 1 … 1,000,000.")
        if not (isinstance(timeout, int | float) and not isinstance(timeout, bool) and 1 <= timeout <= 3600):
            raise ToolInputError.for_param(tool, "task_options", options, "has timeout_s outside 1 … 3600 seconds.")
        self.batch_size, self.timeout_s = int(batch), float(timeout)

    def as_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "timeout_s": self.timeout_s}


def check_simulator_code(tool: str, code: str) -> None:
    """Refuse code that does not parse or defines no top-level ``simulate`` function.

    Raises:
        ToolInputError: naming the line of a syntax error, or the missing function.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ToolInputError(f"{tool}: simulator_code has a syntax error on line {exc.lineno}: {exc.msg}. Fix the "
                             "code and call again.", tool=tool, param="simulator_code") from None
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    if "simulate" not in defined:
        raise ToolInputError(f"{tool}: simulator_code defines no top-level function simulate(theta, rng). Define "
                             "it: theta is an (n, d) float array, rng a numpy Generator; return x of shape (n, k).",
                             tool=tool, param="simulator_code")


class SandboxSimulator:
    """User code as a :class:`~tools.sbi._task.Task` (see the module docstring).

    ``observables`` may be empty until the first simulation: then they are named ``x_1`` … ``x_k``.
    """

    name = CUSTOM

    def __init__(self, tool: str, code: str, prior: list[PriorSpec], observables: list[str] | None,
                 options: SimulatorOptions, workdir: Path, cancel: threading.Event | None = None) -> None:
        check_simulator_code(tool, code)
        self.tool, self.code, self.prior_specs, self.settings = tool, code, prior, options
        self.workdir, self.cancel = workdir, cancel
        self.parameters: tuple[Parameter, ...] = parameters_of(prior)
        self.observables: tuple[str, ...] = tuple(observables or ())
        self.options: dict[str, Any] = options.as_dict()
        self.seconds_per_simulation = 1e-3  # unknown; batches are the code's own (batch_size)
        self.code_sha256 = hashlib.sha256(code.encode()).hexdigest()
        self.description = (f"user simulator (sandboxed Python, sha256 {self.code_sha256[:12]}) of "
                            f"{', '.join(p.name for p in self.parameters)}")

    def prior(self) -> Any:
        return build_prior(self.prior_specs)

    def simulate(self, theta: np.ndarray, seed: int, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """x (n, k) for θ (n, d), run in sandboxed batches; NaN rows are kept for the caller to count."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != len(self.parameters):
            raise ValueError(f"custom simulator: theta has shape {theta.shape}, expected (n, {len(self.parameters)})")
        size = self.settings.batch_size
        parts = []
        for batch, start in enumerate(range(0, len(theta), size)):
            parts.append(self._run_batch(theta[start:start + size], seed, batch, start))
            if progress is not None:
                progress(start + len(parts[-1]))
        return np.concatenate(parts) if parts else np.empty((0, len(self.observables)))

    def observation(self, number: int) -> Observation:
        """θ_true drawn from the prior and x_o simulated, each with the fixed seed of ``number``."""
        import torch

        if not 1 <= number <= N_OBSERVATIONS:
            raise ValueError(f"custom: observation number {number} is out of range; choose 1 … {N_OBSERVATIONS}")
        seed = observation_seed(f"{CUSTOM}/{self.code_sha256}", number)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            theta = self.prior().sample((1,)).double().numpy()
        return Observation(number, theta[0], self.simulate(theta, seed)[0])

    def reference_posterior(self, x_o: np.ndarray, n_samples: int, seed: int) -> np.ndarray | None:
        """None: a user simulator has no reference posterior."""
        return None

    def likelihood_intervals(self, x_o: np.ndarray, cl: float) -> dict[str, tuple[float, float]] | None:
        """None: a user simulator has no likelihood to profile."""
        return None

    # --- one sandboxed batch ------------------------------------------------------------------

    def _run_batch(self, theta: np.ndarray, seed: int, batch: int, start: int) -> np.ndarray:
        from physagent.tools.code._sandbox import Limits, Mount, Sandbox

        self.workdir.mkdir(parents=True, exist_ok=True)
        batch_dir = Path(tempfile.mkdtemp(prefix="simulate-", dir=self.workdir))  # unique if two share workdir
        code_dir, run_dir = batch_dir / "code", batch_dir / "run"
        code_dir.mkdir()
        run_dir.mkdir()
        (code_dir / SIMULATOR_FILE).write_text(self.code)
        (code_dir / "driver.py").write_text(_DRIVER)
        np.save(run_dir / "theta.npy", theta, allow_pickle=False)
        sandbox = Sandbox()
        mount = Mount(code_dir, "/code")
        inside = sandbox.inside(mount)
        limits = Limits(timeout_s=self.settings.timeout_s)
        result = sandbox.run([sys.executable, "-I", f"{inside}/driver.py", f"{inside}/{SIMULATOR_FILE}", str(seed),
                              str(batch)], output_dir=run_dir, mounts=[mount],
                             env=_environment(sandbox.confines_files, self.workdir), limits=limits,
                             cancel=self.cancel)
        rows = f"rows {start + 1}–{start + len(theta)}"
        if result.termination == "cancelled":
            raise ToolCancelledError(f"{self.tool}: cancelled by the caller during the simulations; nothing was "
                                     "written.")
        if result.termination == "timeout":
            raise ToolRuntimeError(f"{self.tool}: the simulator ran longer than {self.settings.timeout_s:g} s on "
                                   f"{rows} of θ and was stopped. Make it faster, or pass task_options "
                                   "{'timeout_s': …} (per run, up to 3600) or a smaller {'batch_size': …}.")
        if result.termination in ("memory", "output_limit"):
            raise ToolRuntimeError(f"{self.tool}: the simulator hit the sandbox's {result.termination} limit on "
                                   f"{rows} of θ. Use a smaller task_options batch_size or less memory.")
        if result.exit_code != 0:
            tail = result.stderr.strip()[-_TAIL:]
            raise ToolInputError(f"{self.tool}: simulator_code failed on {rows} of θ (exit status "
                                 f"{result.exit_code}):\n{tail}\nFix simulate(theta, rng) and call again.",
                                 tool=self.tool, param="simulator_code")
        return self._read_x(run_dir / "x.npy", len(theta), rows)

    def _read_x(self, path: Path, n: int, rows: str) -> np.ndarray:
        def refuse(problem: str) -> ToolInputError:
            return ToolInputError(f"{self.tool}: simulate(theta, rng) {problem} (on {rows} of θ). It must return "
                                  "an array of shape (n, k): one row of k numbers per row of theta.",
                                  tool=self.tool, param="simulator_code")

        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise refuse(f"returned something that is not a numeric array ({type(exc).__name__})") from None
        x = x.reshape(-1, 1) if x.ndim == 1 else x
        if x.ndim != 2 or len(x) != n:
            raise refuse(f"returned shape {x.shape} for {n} rows of theta")
        if not self.observables:
            self.observables = tuple(f"x_{i}" for i in range(1, x.shape[1] + 1))
        if x.shape[1] != len(self.observables):
            raise refuse(f"returned {x.shape[1]} columns, but {len(self.observables)} observables are named "
                         f"({', '.join(self.observables)})")
        return x


def _environment(confined: bool, workdir: Path) -> dict[str, str]:
    """The code's whole environment: nothing of the agent's (no keys), one thread per BLAS pool."""
    home = "/tmp"
    if not confined:  # no private /tmp: a directory of the call's own
        home = str(workdir / "home")
        Path(home).mkdir(exist_ok=True)
    threads = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
    return {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg", **threads}
