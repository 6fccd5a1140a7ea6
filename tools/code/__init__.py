r"""Generated analysis code: the ``run_python`` sandbox tool and validation of what the code produced.

Tools: ``run_python`` (:mod:`tools.code.run`). The sandbox (:mod:`tools.code._sandbox`) confines the
code with bubblewrap (or says which protections are missing without it); :mod:`tools.code._validate`
turns the run into a :class:`ValidationReport`.
"""

from physagent.tools.code import run  # noqa: F401  (registers the tool)
from physagent.tools.code._sandbox import Isolation, Limits, Sandbox, SandboxResult, detect_isolation
from physagent.tools.code._validate import Finding, ValidationReport, ValueCheck, relevant_traceback, static_findings
from physagent.tools.code.run import RunPythonResult, run_python

__all__ = [
    "Finding", "Isolation", "Limits", "RunPythonResult", "Sandbox", "SandboxResult", "ValidationReport", "ValueCheck",
    "detect_isolation", "relevant_traceback", "run_python", "static_findings",
]
