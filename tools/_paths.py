r"""Which host files the tools may read: the file-access policy a workspace carries.

A tool that reads a file from the host (``read_table``, ``read_root``) asks
``ctx.input_file(param, path)``; the path must resolve, symlinks followed, to a regular file inside
an allowed folder:

- the workspace's ``uploads/`` folder (where the REST API and the web UI save uploads);
- the current directory, if the front end allows it (the CLI and Python do; servers do not);
- the folders in ``PHYSAGENT_DATA_DIRS`` (``os.pathsep``-separated), and any a front end grants.

``/proc``, ``/sys`` and ``/dev`` are never read, even when granted: they hold the process
environment (API keys), kernel state and devices, not data. A refusal is a :class:`ToolAccessError`
(CLI exit 2, REST 403, an MCP error result) that names the rule and how to lift it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from physagent.tools._errors import ToolAccessError, ToolInputError

__all__ = ["DATA_DIRS_ENV", "SERVER_ACCESS", "FileAccess", "granted_dirs"]

DATA_DIRS_ENV = "PHYSAGENT_DATA_DIRS"
_NEVER = (Path("/proc"), Path("/sys"), Path("/dev"))
_FIX = f"Copy the file into one of them, or add its folder to {DATA_DIRS_ENV} (folders separated by {os.pathsep!r})."


@dataclass(frozen=True)
class FileAccess:
    """The folders a workspace's tools may read host files from.

    Args:
        allow_cwd: the current directory is allowed, and relative paths start there (else at uploads).
        data_dirs: folders granted in code (e.g. an eval's data folder), on top of ``PHYSAGENT_DATA_DIRS``.
    """

    allow_cwd: bool = True
    data_dirs: tuple[Path, ...] = ()

    def roots(self, uploads: Path) -> dict[Path, str]:
        """Allowed folder → the name the error message gives it, each resolved (so symlinked roots match)."""
        roots = {uploads.resolve(): "uploads"}
        if self.allow_cwd:
            roots.setdefault(Path.cwd().resolve(), "the current directory")
        for folder in (*self.data_dirs, *granted_dirs()):
            roots.setdefault(folder.resolve(), DATA_DIRS_ENV)
        return roots

    def resolve(self, tool: str, param: str, path: str, uploads: Path) -> Path:
        """The real path of the regular file ``path`` names, if it lies inside an allowed folder.

        Raises:
            ToolAccessError: outside every allowed folder (symlinks followed), or under /proc, /sys, /dev.
            ToolInputError: inside one, but missing or not a regular file.
        """
        lexical = _lexical(Path.cwd() if self.allow_cwd else uploads, path)
        real = _real(lexical)
        where = real or _loose(lexical)  # a missing file is judged by where it would be, links followed
        for candidate in (lexical, where):
            _check_never(tool, param, path, candidate)
        roots = self.roots(uploads)
        # refused before existence is checked: no probing which host files exist
        if _inside(where, roots) is None:
            raise _outside(tool, param, path, where, roots)
        if real is None:
            raise ToolInputError.for_param(tool, param, path, f"does not exist (looked for {lexical}). "
                                           "Give the path of an existing file.")
        if not real.is_file():
            raise ToolInputError.for_param(tool, param, path, f"is not a regular file ({real}). Give a data file.")
        return real


SERVER_ACCESS = FileAccess(allow_cwd=False)
"""Servers (REST, MCP, web UI): uploads and ``PHYSAGENT_DATA_DIRS`` only — never the server's own directory."""


def granted_dirs() -> list[Path]:
    """The folders in ``PHYSAGENT_DATA_DIRS`` (read on every call, so a change applies at once)."""
    entries = os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep)
    return [Path(entry).expanduser().absolute() for entry in entries if entry.strip()]


def _lexical(base: Path, path: str) -> Path:
    """``path`` made absolute against ``base``, with ``..`` and ``.`` folded (no symlinks followed yet)."""
    try:
        expanded = Path(path).expanduser()
    except RuntimeError:  # '~someone' with no such user: take it literally
        expanded = Path(path)
    return Path(os.path.normpath(base / expanded))


def _real(path: Path) -> Path | None:
    """Every symlink followed; None when the file is missing, a link loops, or the name is invalid."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None


def _loose(path: Path) -> Path:
    """Symlinks followed as far as they exist (for a path whose last parts are missing)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path


def _inside(path: Path, roots: dict[Path, str]) -> Path | None:
    return next((root for root in roots if path.is_relative_to(root)), None)


def _check_never(tool: str, param: str, path: str, candidate: Path) -> None:
    for forbidden in _NEVER:
        if candidate.is_relative_to(forbidden):
            raise ToolAccessError.for_param(
                tool, param, path, f"is under {forbidden}: {', '.join(map(str, _NEVER))} are never read, even "
                f"from a folder granted in {DATA_DIRS_ENV}. Copy the data into a regular file in an allowed folder.",
            )


def _outside(tool: str, param: str, path: str, where: Path, roots: dict[Path, str]) -> ToolInputError:
    allowed = "; ".join(f"{name}: {root}" for root, name in roots.items())
    if not any(name == DATA_DIRS_ENV for name in roots.values()):
        allowed += f"; {DATA_DIRS_ENV}: none set"
    return ToolAccessError.for_param(
        tool, param, path, f"resolves to {where}, which is outside the allowed data folders ({allowed}). {_FIX}",
    )
