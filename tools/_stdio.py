"""Capture what C++ libraries (Pythia, FastJet) print on file descriptor 1.

They write through ``std::cout``, below Python's ``sys.stdout``, so a redirect has to happen at the
descriptor level. Captured text is returned so errors can quote it; it never reaches a JSON stdout.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["capture_fd_stdout", "stdout_to_stderr"]


@contextmanager
def capture_fd_stdout() -> Iterator[list[str]]:
    """Within the block, fd 1 goes to a temporary file; afterwards the list holds its text."""
    captured: list[str] = []
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
