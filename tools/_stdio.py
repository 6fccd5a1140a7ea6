"""Capture what C++ libraries (Pythia, FastJet) print on file descriptor 1.

They write through ``std::cout``, below Python's ``sys.stdout``, so a redirect has to happen at the
descriptor level. Captured text is returned so errors can quote it; it never reaches a JSON stdout.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["capture_fd_stdout", "stdout_to_stderr"]


# fd 1 is one per process: two threads swapping it at once restore each other's sink (a REST server
# runs tool calls in threads), so captures take turns; a forked child starts with the lock free.
_FD_1 = threading.RLock()
os.register_at_fork(after_in_child=lambda: globals().update(_FD_1=threading.RLock()))


@contextmanager
def capture_fd_stdout() -> Iterator[list[str]]:
    """Within the block, fd 1 goes to a temporary file; afterwards the list holds its text.

    Threads capture one at a time (fd 1 is shared by the whole process)."""
    captured: list[str] = []
    with _FD_1:
        yield from _captured_into(captured)


def _captured_into(captured: list[str]) -> Iterator[list[str]]:
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Within the block, fd 1 points at fd 2: library chatter stays visible but off a JSON stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
