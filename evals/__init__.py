r"""physagent evals: plain-language tasks with machine-checkable expectations, run through the agent.

- :func:`load_suite` reads a YAML suite (``evals/basic.yaml``, :data:`DEFAULT_SUITE`) into validated
  :class:`Task` models; :func:`select_tasks` picks tasks by id.
- :func:`run_suite` runs the tasks through one backend, each in a fresh workspace, and returns a
  :class:`SuiteReport` (pass rate, tool-call accuracy, mean steps, tokens, wall time).
- :func:`check` judges one :class:`agent.AgentRecord` against a task; :func:`format_report` renders
  Markdown, ``report.model_dump(mode="json")`` the JSON.

>>> from physagent.evals import load_suite
>>> len(load_suite()) >= 15
True
"""

from physagent.evals.runner import (
    DEFAULT_SUITE,
    ArgumentMatch,
    EvalSuiteError,
    Expectation,
    NumberExpectation,
    ProgressCallback,
    SuiteReport,
    Task,
    TaskResult,
    check,
    format_report,
    load_suite,
    run_suite,
    select_tasks,
)

__all__ = [
    "DEFAULT_SUITE", "ArgumentMatch", "EvalSuiteError", "Expectation", "NumberExpectation", "ProgressCallback",
    "SuiteReport", "Task", "TaskResult", "check", "format_report", "load_suite", "run_suite", "select_tasks",
]
