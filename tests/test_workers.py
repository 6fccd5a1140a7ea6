"""worker_count: one count of parallel workers for every tool, from PHYSAGENT_WORKERS or the usable cores."""

from __future__ import annotations

import os

import pytest

from physagent.tools import ToolInputError, worker_count


def test_workers_variable_overrides_the_core_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """PHYSAGENT_WORKERS sets the count, even above the number of cores."""
    monkeypatch.setenv("PHYSAGENT_WORKERS", "3")
    assert worker_count() == 3
    monkeypatch.setenv("PHYSAGENT_WORKERS", " 64 ")
    assert worker_count() == 64


@pytest.mark.parametrize("unset", [None, ""])
def test_without_the_variable_every_usable_core_is_a_worker(monkeypatch: pytest.MonkeyPatch,
                                                            unset: str | None) -> None:
    """Unset (or empty), the count is the cores this process may run on, at least one."""
    if unset is None:
        monkeypatch.delenv("PHYSAGENT_WORKERS", raising=False)
    else:
        monkeypatch.setenv("PHYSAGENT_WORKERS", unset)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert worker_count() == max(1, cores) >= 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_workers_value_says_what_is_wrong_and_how_to_fix_it(monkeypatch: pytest.MonkeyPatch,
                                                                  value: str) -> None:
    """A value that is not a positive integer fails with a message naming the value and the fix."""
    monkeypatch.setenv("PHYSAGENT_WORKERS", value)
    with pytest.raises(ToolInputError) as caught:
        worker_count()
    message = str(caught.value)
    assert f"PHYSAGENT_WORKERS={value!r} is not a positive integer" in message
    assert "at least 1 (e.g. PHYSAGENT_WORKERS=2)" in message
    assert "or unset it" in message
