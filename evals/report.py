r"""Eval results: one :class:`TaskResult` per run of a task, a :class:`SuiteReport` per backend and mode.

Aggregates over a report of ``n`` tasks run ``k`` times each (``repeats``):

- **pass@1** — the mean pass rate over all runs, ``(1/nk) Σ_tasks Σ_runs passed``: the chance that one
  run of a random task passes;
- **pass^k** — the fraction of tasks that pass in *all* ``k`` runs (τ-bench, arXiv:2406.12045): how often
  the agent is reliably right; ``pass^k ≤ pass@1``, equal when every task is all-or-nothing;
- **tool-call accuracy** — expected calls made successfully with the expected arguments, over all expected
  calls;
- the **failure taxonomy** — each failed run counted once, under the first of :data:`FAILURE_KINDS` its
  failures show (the order below is the precedence: a run that hit the step limit is "limit reached" even
  if it also lacks a tool);
- **median wall time** and **median tokens** (prompt + completion) per run, every turn of the task
  (history included, setup excluded).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field, computed_field

__all__ = ["FAILURE_KINDS", "SuiteReport", "TaskResult", "TaskSummary", "format_report"]

FAILURE_KINDS: dict[str, str] = {
    "setup_failed": "a setup step of the task failed (the suite's problem, not the agent's)",
    "crash": "the backend or the loop raised, or the backend failed for good",
    "limit_reached": "the run stopped at max_steps or max_seconds without an answer",
    "invalid_plan": "plan mode: every plan the model submitted failed the plan checker (fix budget spent)",
    "not_refused": "a refusal task: a call made an artifact, or the answer does not say it cannot",
    "wrongly_refused": "an expected tool was never tried, no call failed, and the answer says it cannot",
    "code_failure": "run_python was expected and every run_python call failed (or failed its checks)",
    "gave_up_after_error": "an expected tool was called, failed, and never succeeded (or the loop stopped a "
                           "repeated failing call)",
    "wrong_tool": "an expected tool was never tried, the calls ran in the wrong order, or an expected "
                  "artifact kind is missing",
    "bad_argument": "the expected tools ran, but an argument differs from the expected value",
    "invented_number": "the answer states a number no tool result or the request supports (unsupported)",
    "wrong_quantity": "the answer labels a value as another quantity than its source holds (mislabelled)",
    "wrong_number": "a value the task checks — in the answer, a result field or recomputed from an artifact "
                    "— is missing or outside its tolerance",
    "incomplete_answer": "the answer lacks a required phrase or a citation of a retrieved passage",
}


class TaskResult(BaseModel):
    """One run of one task: the verdict, the expectations it failed (in words, with their kinds), the cost."""

    id: str
    repeat: int = Field(default=0, description="Which run of the task (0-based).")
    suite: str = ""
    tags: list[str] = Field(default_factory=list)
    mode: str = ""
    passed: bool
    failures: list[str] = Field(default_factory=list)
    failure_kinds: list[str] = Field(default_factory=list, description="The kind of each failure, in order.")
    expected_calls: int = Field(description="Tool calls the task expects.")
    correct_calls: int = Field(description="Expected calls made successfully with the expected arguments.")
    tool_calls: list[str] = Field(default_factory=list, description="Calls made, e.g. 'cluster_jets (failed)'.")
    history_calls: list[str] = Field(default_factory=list, description="Calls of the earlier (history) turns.")
    answer: str = ""
    error: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    setup_s: float = 0.0
    workspace: str | None = None

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def category(self) -> str | None:
        """The failure kind this run counts under in the taxonomy (None when it passed)."""
        if self.passed or not self.failure_kinds:
            return None
        return min(self.failure_kinds, key=list(FAILURE_KINDS).index)


class TaskSummary(BaseModel):
    """One task over all its runs: how often it passed, what it cost, why it failed."""

    id: str
    suite: str
    tags: list[str]
    runs: int
    passes: int
    median_wall_s: float
    median_tokens: float
    categories: dict[str, int] = Field(description="Failed runs by taxonomy kind.")
    first_failure: str = Field(description="The first failure of the first failed run, or ''.")


class SuiteReport(BaseModel):
    """One backend in one mode over a suite, run ``repeats`` times, with the aggregates people compare by."""

    backend: str
    mode: str = ""
    suite: str = ""
    repeats: int = 1
    runs: list[TaskResult] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_tasks(self) -> int:
        return len({r.id for r in self.runs})

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pass_at_1(self) -> float:
        """The mean pass rate over every run."""
        return sum(r.passed for r in self.runs) / len(self.runs) if self.runs else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pass_hat_k(self) -> float:
        """The fraction of tasks that passed in every one of their runs (pass^k, k = repeats)."""
        tasks = self.summaries()
        return sum(t.passes == t.runs for t in tasks) / len(tasks) if tasks else 0.0

    @property
    def pass_rate(self) -> float:
        """pass@1 (the name of earlier reports)."""
        return self.pass_at_1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tool_call_accuracy(self) -> float:
        """Expected tool calls made successfully with the expected arguments, over all expected calls."""
        expected = sum(r.expected_calls for r in self.runs)
        return sum(r.correct_calls for r in self.runs) / expected if expected else 1.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def taxonomy(self) -> dict[str, int]:
        """Failed runs by failure kind, in the order of :data:`FAILURE_KINDS`."""
        counts = Counter(r.category for r in self.runs if not r.passed)
        return {kind: counts[kind] for kind in FAILURE_KINDS if counts[kind]}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mean_steps(self) -> float:
        return sum(r.steps for r in self.runs) / len(self.runs) if self.runs else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def median_wall_s(self) -> float:
        return round(statistics.median(r.wall_s for r in self.runs), 3) if self.runs else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def median_tokens(self) -> float:
        return statistics.median(r.tokens for r in self.runs) if self.runs else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.runs)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.runs)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def wall_s(self) -> float:
        return round(sum(r.wall_s for r in self.runs), 3)

    def summaries(self) -> list[TaskSummary]:
        """One row per task, in suite order."""
        by_task: dict[str, list[TaskResult]] = {}
        for run in self.runs:
            by_task.setdefault(run.id, []).append(run)
        return [_summary(runs) for runs in by_task.values()]


def _summary(runs: list[TaskResult]) -> TaskSummary:
    failed = [r for r in runs if not r.passed]
    return TaskSummary(
        id=runs[0].id, suite=runs[0].suite, tags=runs[0].tags, runs=len(runs), passes=len(runs) - len(failed),
        median_wall_s=round(statistics.median(r.wall_s for r in runs), 3),
        median_tokens=statistics.median(r.tokens for r in runs),
        categories=dict(Counter(r.category or "unknown" for r in failed)),
        first_failure=failed[0].failures[0] if failed and failed[0].failures else "",
    )


# Markdown ----------------------------------------------------------------------------------------


def format_report(reports: SuiteReport | Sequence[SuiteReport]) -> str:
    """Markdown: a summary row per backend and mode, the failure taxonomy, then each report's per-task table."""
    reports = [reports] if isinstance(reports, SuiteReport) else list(reports)
    suite = reports[0].suite if reports else ""
    k = max((r.repeats for r in reports), default=1)
    lines = [f"## physagent eval{f' — suite {suite}' if suite else ''}", "",
             f"| backend | mode | tasks × runs | pass@1 | pass^{k} | tool-call accuracy | mean steps "
             "| median wall s | median tokens | prompt tokens | completion tokens | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_summary_row(r) for r in reports]
    lines += ["", "### Failure taxonomy (failed runs)", "", "| kind | meaning | "
              + " | ".join(f"{r.backend} {r.mode}".strip() for r in reports) + " |",
              "|---|---|" + "---|" * len(reports)]
    for kind, meaning in FAILURE_KINDS.items():
        counts = [r.taxonomy.get(kind, 0) for r in reports]
        if any(counts):
            lines.append(f"| {kind} | {meaning} | " + " | ".join(map(str, counts)) + " |")
    for report in reports:
        lines += ["", f"### {report.backend} {report.mode}".rstrip(), "",
                  "| task | suite | passed | median wall s | median tokens | failed as | first failure |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_task_row(t) for t in report.summaries()]
    return "\n".join(lines) + "\n"


def _summary_row(r: SuiteReport) -> str:
    return (f"| {r.backend} | {r.mode or '-'} | {r.n_tasks} × {r.repeats} | {r.pass_at_1:.0%} | {r.pass_hat_k:.0%} "
            f"| {r.tool_call_accuracy:.0%} | {r.mean_steps:.1f} | {r.median_wall_s:.1f} | {r.median_tokens:,.0f} "
            f"| {r.prompt_tokens:,} | {r.completion_tokens:,} | {r.wall_s:.1f} s |")


def _task_row(t: TaskSummary) -> str:
    verdict = f"{t.passes}/{t.runs}" if t.passes == t.runs else f"**{t.passes}/{t.runs}**"
    kinds = ", ".join(f"{kind} ×{n}" if n > 1 else kind for kind, n in t.categories.items())
    return (f"| {t.id} | {t.suite} | {verdict} | {t.median_wall_s:.1f} | {t.median_tokens:,.0f} | {kinds} "
            f"| {_cell(t.first_failure)} |")


def _cell(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return re.sub(r"\s+", " ", text).replace("|", "\\|")
