r"""Eval suites on disk: YAML files of tasks, read and validated, and a selection of them.

:func:`load_suite` reads a file, several files or a directory (its ``*.yaml`` files) into validated
:class:`~physagent.evals.schema.Task` models, each knowing the file it came from; :func:`select_tasks`
picks tasks by id or tag. The built-in suite, :data:`DEFAULT_SUITE`, is every ``evals/*.yaml`` file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from physagent.evals.schema import EvalSuiteError, Task

__all__ = ["DEFAULT_SUITE", "load_suite", "select_tasks"]

DEFAULT_SUITE = Path(__file__).parent
"""The built-in suite: every ``*.yaml`` file of the ``evals`` folder."""


def load_suite(path: Path | str | Sequence[Path | str] = DEFAULT_SUITE) -> list[Task]:
    """Read and validate a suite: a YAML file (a mapping with ``tasks:``, or a bare list), a directory (its
    ``*.yaml`` files, in name order), or several of these.

    Raises:
        EvalSuiteError: unreadable YAML, a malformed task (its file, id and field named), or duplicate ids.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    files = [f for p in map(Path, paths) for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
    if not files:
        raise EvalSuiteError(f"no suite files in {', '.join(map(str, paths))}")
    tasks = [task for file in files for task in _load_file(file)]
    origin: dict[str, str] = {}
    duplicates = []
    for task in tasks:
        if task.id in origin:
            duplicates.append(f"{task.id} ({origin[task.id]}, {task.suite})")
        origin.setdefault(task.id, task.suite)
    if duplicates:
        raise EvalSuiteError(f"duplicate task ids: {', '.join(duplicates)}")
    return tasks


def _load_file(path: Path) -> list[Task]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSuiteError(f"{path}: cannot read the suite: {exc}") from exc
    raw = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(raw, list) or not raw:
        raise EvalSuiteError(f"{path}: expected a non-empty list of tasks under 'tasks:'")
    return [_parse_task(path, i, item) for i, item in enumerate(raw)]


def _parse_task(path: Path, index: int, item: Any) -> Task:
    name = item.get("id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
    try:
        return Task.model_validate({**item, "suite": path.stem} if isinstance(item, dict) else item)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'task'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise EvalSuiteError(f"{path}: task {name!r}: {problems}") from exc


def select_tasks(tasks: Sequence[Task], only: Sequence[str] | None = None,
                 tags: Sequence[str] | None = None) -> list[Task]:
    """The tasks whose ids are in ``only`` and that carry any of ``tags`` (each filter off when empty), in
    suite order.

    Raises:
        EvalSuiteError: an id in ``only`` or a tag is in no task (the known ones are listed).
    """
    unknown = sorted(set(only or ()) - {t.id for t in tasks})
    if unknown:
        raise EvalSuiteError(f"no task {', '.join(unknown)} in the suite; known: {', '.join(t.id for t in tasks)}")
    known_tags = sorted({tag for t in tasks for tag in t.tags})
    missing = sorted(set(tags or ()) - set(known_tags))
    if missing:
        raise EvalSuiteError(f"no task is tagged {', '.join(missing)}; tags: {', '.join(known_tags)}")
    return [t for t in tasks if (not only or t.id in set(only)) and (not tags or set(t.tags) & set(tags))]
