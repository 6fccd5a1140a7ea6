r"""Directory locks that keep a live call's files safe, and the sweep that clears what killed calls left.

A killed call (SIGKILL, a crash, a power cut) can leave two kinds of debris in a workspace: its staging
directory ``.staging/<uuid>/``, and, when it died between renaming an artifact into place and writing
its row, an unlisted ``artifacts/<id>/``. Neither is ever visible as an artifact; the sweep removes them.

Locks are ``flock``\ s on the directories themselves (no lock files to clean up), dropped by the kernel
when their holder dies, however it dies:

- a running call holds its staging directory exclusively for its whole life;
- a call holds the workspace root *shared* while it creates its staging directory and while it commits
  (rename into ``artifacts/`` plus the database transaction);
- the sweep holds the root *exclusively*, so it never sees a staging directory before its lock is
  taken, nor an artifact between its rename and its row; a staging directory it can lock is stale.

Where ``flock`` is missing or refused (Windows, some network filesystems) nothing is locked and
nothing is swept.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN

try:
    import fcntl
except ImportError:  # Windows: no flock, so no locks and no sweeping
    fcntl = None  # type: ignore[assignment]

__all__ = ["locked", "locked_root", "sweep_leftovers"]

_SWEEP_WAIT_S = 5.0  # how long opening a workspace waits for other processes' commits before skipping the sweep


@contextmanager
def locked(directory: Path, *, exclusive: bool, wait_s: float | None = None) -> Iterator[bool]:
    """Hold an ``flock`` on ``directory`` for the block; yields whether the lock is held.

    Args:
        directory: An existing directory.
        exclusive: Exclusive (``LOCK_EX``) rather than shared (``LOCK_SH``).
        wait_s: None waits as long as it takes; otherwise try for this many seconds (0: once).

    Yields:
        True when held; False when another holder kept it, the directory vanished, or the
        filesystem has no ``flock``.
    """
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        yield _acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, wait_s)
    finally:
        os.close(fd)  # closing drops the lock


def _acquire(fd: int, mode: int, wait_s: float | None) -> bool:
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, mode if deadline is None else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
            continue
        except OSError:  # e.g. NFS refuses LOCK_EX on a read-only descriptor: behave as unlocked
            return False
        return True


@contextmanager
def locked_root(root: Path) -> Iterator[None]:
    """Hold the workspace root shared for the block, creating it if needed.

    A failed call's cleanup may remove an empty root between our ``mkdir`` and our lock; then the lock
    is on a dead directory, so take it again on the new one.
    """
    for _ in range(10):
        root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(root, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            held = fcntl is not None and _acquire(fd, fcntl.LOCK_SH, None)
            if held and not _same_directory(fd, root):
                continue
            yield  # unheld only without flock: then the sweep cannot lock either, and stays off
            return
        finally:
            os.close(fd)
    raise OSError(f"workspace {root} keeps disappearing while a call starts")


def _same_directory(fd: int, path: Path) -> bool:
    try:
        now = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def sweep_leftovers(root: Path, listed_ids: Callable[[], set[str] | None]) -> list[Path]:
    """Remove stale staging directories and unlisted artifact directories under ``root``.

    Args:
        root: The workspace root (must exist).
        listed_ids: Returns the artifact ids the database lists, or None when there is no database
            (then no artifact directory is touched).

    Returns:
        The directories removed. Nothing is removed when the root cannot be locked within a few
        seconds (another process is committing) or the filesystem has no ``flock``.
    """
    removed: list[Path] = []
    with locked(root, exclusive=True, wait_s=_SWEEP_WAIT_S) as alone:
        if not alone:
            return removed
        staging = root / ".staging"
        for entry in sorted(staging.iterdir()) if staging.is_dir() else []:
            with locked(entry, exclusive=True, wait_s=0) as stale:  # a live call holds its own
                if stale and entry.is_dir():
                    removed += _remove(entry)
        with contextlib.suppress(OSError):
            staging.rmdir()  # only when empty
        artifacts = root / "artifacts"
        listed = listed_ids() if artifacts.is_dir() else None
        if listed is not None:
            for entry in sorted(artifacts.iterdir()):
                if entry.is_dir() and re.fullmatch(ARTIFACT_ID_PATTERN, entry.name) and entry.name not in listed:
                    removed += _remove(entry)
    return removed


def _remove(directory: Path) -> list[Path]:
    shutil.rmtree(directory, ignore_errors=True)
    return [] if directory.exists() else [directory]
