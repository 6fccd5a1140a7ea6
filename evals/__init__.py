r"""physagent evals: plain-language tasks with machine-checkable expectations, run through the agent.

- :func:`load_suite` reads YAML suites (by default every ``evals/*.yaml`` file, :data:`DEFAULT_SUITE`)
  into validated :class:`Task` models — with ``setup`` calls, ``files`` of the physicist's, a ``history``
  of earlier requests, and expectations — and :func:`select_tasks` picks tasks by id or tag;
- :func:`run_suite` runs the tasks through one backend in one mode, ``repeats`` times, each run in a fresh
  workspace, and returns a :class:`SuiteReport` (pass@1, pass^k, the failure taxonomy, tool-call accuracy,
  median wall time and tokens, the per-task table);
- :func:`check` judges one :class:`agent.AgentRecord` against a task, recomputing values from the
  artifacts' files (:func:`measure`); :func:`format_report` renders Markdown, ``report.model_dump(mode="json")``
  the JSON.

>>> from physagent.evals import load_suite
>>> len(load_suite()) >= 60
True
"""

from physagent.evals.checks import Failure, check, refuses
from physagent.evals.measures import MeasureError, measure
from physagent.evals.report import FAILURE_KINDS, SuiteReport, TaskResult, TaskSummary, format_report
from physagent.evals.runner import ProgressCallback, prepare_task, run_suite
from physagent.evals.schema import (
    MEASURES,
    ArgumentMatch,
    ArtifactCheck,
    EvalSuiteError,
    Expectation,
    FileSpec,
    NumberExpectation,
    SetupStep,
    Task,
)
from physagent.evals.suite import DEFAULT_SUITE, load_suite, select_tasks

__all__ = [
    "DEFAULT_SUITE", "FAILURE_KINDS", "MEASURES", "ArgumentMatch", "ArtifactCheck", "EvalSuiteError", "Expectation",
    "Failure", "FileSpec", "MeasureError", "NumberExpectation", "ProgressCallback", "SetupStep", "SuiteReport", "Task",
    "TaskResult", "TaskSummary", "check", "format_report", "load_suite", "measure", "prepare_task", "refuses",
    "run_suite", "select_tasks",
]
