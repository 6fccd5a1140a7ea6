r"""The workspace: a directory of artifacts plus an SQLite store of artifacts and tool calls.

Layout under ``PHYSAGENT_HOME`` (default ``~/.physagent``)::

    physagent.sqlite        artifacts and calls (provenance, cache keys)
    artifacts/<id>/...      committed artifact files, never modified after commit
    .staging/<id>/...       files of a running call; moved into artifacts/ only on success

A file becomes an artifact only after its directory is renamed into ``artifacts/`` (atomic on one
filesystem) and its row is written; a crash or Ctrl-C before that leaves no visible artifact.
Reading never creates anything: a bad call leaves a missing workspace missing.

A killed call's leftovers (its ``.staging/<uuid>/``, or an ``artifacts/<id>/`` renamed but never
recorded) are swept the first time a process opens the workspace, with a logged warning naming them;
directory locks keep every live call's files out of the sweep (see :mod:`physagent.tools._sweep`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physagent.tools._artifacts import Artifact, files_sha256, id_prefix
from physagent.tools._paths import FileAccess
from physagent.tools._sweep import locked, locked_root, sweep_leftovers

__all__ = ["CallRecord", "PendingArtifact", "Workspace", "default_home", "strict_json"]

log = logging.getLogger(__name__)
_swept: set[Path] = set()  # roots this process has swept: once per process is enough
_swept_lock = threading.Lock()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, primary_file TEXT NOT NULL, files TEXT NOT NULL,
    sha256 TEXT NOT NULL, summary TEXT NOT NULL, metadata TEXT NOT NULL, call_id TEXT,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, tool TEXT NOT NULL,
    tool_version TEXT NOT NULL, inputs TEXT NOT NULL, input_artifacts TEXT NOT NULL,
    outputs TEXT NOT NULL, result TEXT NOT NULL, seed INTEGER, started REAL NOT NULL,
    wall_s REAL NOT NULL, packages TEXT NOT NULL, cache_key TEXT NOT NULL, cached_from TEXT,
    session TEXT);
CREATE INDEX IF NOT EXISTS calls_cache ON calls (cache_key);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, started REAL NOT NULL, backend TEXT NOT NULL, record TEXT NOT NULL);
"""


def default_home() -> Path:
    """``PHYSAGENT_HOME`` if set, else ``~/.physagent``."""
    return Path(os.environ.get("PHYSAGENT_HOME") or Path.home() / ".physagent").expanduser()


@dataclass(frozen=True)
class CallRecord:
    """One recorded tool call: what ran, on what, with which software, producing what."""

    id: str
    seq: int
    tool: str
    tool_version: str
    inputs: dict[str, Any]
    input_artifacts: dict[str, str]
    outputs: list[str]
    result: dict[str, Any]
    seed: int | None
    started: float
    wall_s: float
    packages: dict[str, str]
    cache_key: str
    cached_from: str | None
    session: str | None = None


@dataclass
class PendingArtifact:
    """An artifact being written by a running call: write files into ``directory``, then ``finish``."""

    id: str
    kind: str
    directory: Path
    final_directory: Path
    artifact: Artifact | None = None

    def finish(
        self, primary: str, summary: str, metadata: dict[str, Any] | None = None
    ) -> Artifact:
        """Seal the files written so far; returns the artifact as it will be after commit."""
        names = sorted(p.name for p in self.directory.iterdir() if p.is_file())
        if primary not in names:
            raise FileNotFoundError(f"artifact {self.id}: primary file {primary!r} was not written")
        self.artifact = Artifact(
            id=self.id,
            kind=self.kind,
            path=self.final_directory / primary,
            files=names,
            sha256=files_sha256(self.directory, names),
            summary=summary,
            metadata=metadata or {},
        )
        return self.artifact


class Workspace:
    """Artifacts and provenance under one root directory, and the host folders its tools may read.

    ``file_access`` decides which host files the data tools may import: by default uploads, the current
    directory and ``PHYSAGENT_DATA_DIRS``; servers pass :data:`~physagent.tools._paths.SERVER_ACCESS`.
    """

    def __init__(self, root: Path | str | None = None, *, file_access: FileAccess | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root else default_home().resolve()
        self.file_access = file_access or FileAccess()
        with _swept_lock:
            first_open = self.root not in _swept and self.root.is_dir()
            if first_open:
                _swept.add(self.root)
        if first_open:
            self.sweep()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @property
    def db_path(self) -> Path:
        return self.root / "physagent.sqlite"

    @property
    def exists(self) -> bool:
        return self.db_path.exists()

    @contextmanager
    def _db(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db_path, timeout=30)
        try:
            con.row_factory = sqlite3.Row
            if create:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
            with con:
                yield con
        finally:
            con.close()

    # artifacts -----------------------------------------------------------------------------

    def get_artifact(self, artifact_id: str) -> Artifact | None:
        """The committed artifact with this id, or None."""
        if not self.exists:
            return None
        with self._db() as con:
            row = con.execute("SELECT * FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return self._artifact_from_row(row) if row else None

    def list_artifacts(self, kind: str | None = None) -> list[Artifact]:
        """All committed artifacts, oldest first (optionally of one kind)."""
        if not self.exists:
            return []
        query, args = "SELECT * FROM artifacts", ()
        if kind:
            query, args = query + " WHERE kind = ?", (kind,)  # type: ignore[assignment]
        with self._db() as con:
            rows = con.execute(query + " ORDER BY created", args).fetchall()
        return [self._artifact_from_row(row) for row in rows]

    def _artifact_from_row(self, row: sqlite3.Row) -> Artifact:
        directory = self.root / "artifacts" / row["id"]
        return Artifact(
            id=row["id"],
            kind=row["kind"],
            path=directory / row["primary_file"],
            files=json.loads(row["files"]),
            sha256=row["sha256"],
            summary=row["summary"],
            metadata=json.loads(row["metadata"]),
        )

    def artifact_intact(self, artifact: Artifact) -> bool:
        """True when every file of the artifact is still on disk."""
        return all((artifact.directory / name).is_file() for name in artifact.files)

    # staging and commit --------------------------------------------------------------------

    def new_pending(self, kind: str, staging: Path) -> PendingArtifact:
        """Reserve an id and a staging directory for a new artifact of ``kind``."""
        artifact_id = f"{id_prefix(kind)}-{uuid.uuid4().hex[:10]}"
        directory = staging / artifact_id
        directory.mkdir(parents=True)
        return PendingArtifact(artifact_id, kind, directory, self.root / "artifacts" / artifact_id)

    @contextmanager
    def staging_area(self) -> Iterator[Path]:
        """A private staging directory, locked while the call lives (no sweep takes it) and always removed."""
        made_root = not self.root.exists()
        staging = self.root / ".staging" / uuid.uuid4().hex
        try:
            with contextlib.ExitStack() as held:
                with locked_root(self.root):  # a sweep never sees the directory before its lock is taken
                    staging.mkdir(parents=True)
                    held.enter_context(locked(staging, exclusive=True))
                try:
                    yield staging
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
        finally:
            with locked(self.root, exclusive=True, wait_s=0) as alone:  # leave a failed call's workspace as found
                for directory in (staging.parent, *([self.root] if made_root else [])) if alone else []:
                    with contextlib.suppress(OSError):
                        directory.rmdir()  # only succeeds when empty

    def sweep(self) -> list[Path]:
        """Remove what killed calls left behind: stale staging and unlisted artifact directories.

        Runs once per process when a workspace is first opened; logs a warning naming what it removed.

        Returns:
            The directories removed.
        """
        try:
            removed = sweep_leftovers(self.root, self._listed_ids)
        except (OSError, sqlite3.Error) as exc:
            log.debug("workspace %s: sweep skipped (%s)", self.root, exc)
            return []
        if removed:
            names = ", ".join(str(p.relative_to(self.root)) for p in removed)
            log.warning("physagent: removed %d leftover(s) of interrupted calls from workspace %s: %s",
                        len(removed), self.root, names)
        return removed

    def _listed_ids(self) -> set[str] | None:
        if not self.exists:
            return None
        with self._db() as con:
            return {row["id"] for row in con.execute("SELECT id FROM artifacts")}

    def commit(self, pending: list[PendingArtifact], record: CallRecord) -> None:
        """Move finished artifacts into place, then record them and the call in one transaction."""
        unfinished = [p.id for p in pending if p.artifact is None]
        if unfinished:
            raise RuntimeError(f"artifacts {unfinished} were created but never finished")
        (self.root / "artifacts").mkdir(parents=True, exist_ok=True)
        moved: list[PendingArtifact] = []
        with locked_root(self.root), self._db(create=True) as con:  # no sweep between rename and row
            try:
                for item in pending:
                    item.directory.rename(item.final_directory)
                    moved.append(item)
                    self._insert_artifact(con, item.artifact, record.id)  # type: ignore[arg-type]
                self._insert_call(con, record)
            except BaseException:  # the transaction rolls back: move the files back to be removed with staging
                for item in moved:
                    with contextlib.suppress(OSError):
                        item.final_directory.rename(item.directory)
                raise

    def record_call(self, record: CallRecord) -> None:
        """Record a call that produced no new files (e.g. a cache hit)."""
        with self._db(create=True) as con:
            self._insert_call(con, record)

    @staticmethod
    def _insert_artifact(con: sqlite3.Connection, artifact: Artifact, call_id: str) -> None:
        con.execute(
            "INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                artifact.id, artifact.kind, artifact.path.name, strict_json(artifact.files),
                artifact.sha256, artifact.summary, strict_json(artifact.metadata), call_id, time.time(),
            ),
        )

    @staticmethod
    def _insert_call(con: sqlite3.Connection, r: CallRecord) -> None:
        con.execute(
            "INSERT INTO calls (id, tool, tool_version, inputs, input_artifacts, outputs, result, seed,"
            " started, wall_s, packages, cache_key, cached_from, session) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                r.id, r.tool, r.tool_version, strict_json(r.inputs), strict_json(r.input_artifacts),
                strict_json(r.outputs), strict_json(r.result), r.seed, r.started, r.wall_s,
                strict_json(r.packages), r.cache_key, r.cached_from, r.session,
            ),
        )

    # calls ---------------------------------------------------------------------------------

    def calls(self, limit: int | None = None, session: str | None = None) -> list[CallRecord]:
        """Recorded calls, oldest first (the last ``limit``; only one agent session's when given)."""
        if not self.exists:
            return []
        with self._db() as con:
            rows = con.execute("SELECT * FROM calls ORDER BY seq").fetchall()
        records = [self._call_from_row(row) for row in rows]
        if session is not None:
            records = [r for r in records if r.session == session]
        return records[-limit:] if limit else records

    # agent sessions ------------------------------------------------------------------------

    def save_session(self, session_id: str, backend: str, record: dict[str, Any]) -> None:
        """Store (or update) an agent session's record: requests, events, answers."""
        with self._db(create=True) as con:
            con.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                (session_id, time.time(), backend, strict_json(_finite_or_text(record))),
            )

    def sessions(self) -> list[dict[str, Any]]:
        """All agent sessions, oldest first: id, started, backend, record."""
        if not self.exists:
            return []
        with self._db() as con:
            rows = con.execute("SELECT * FROM sessions ORDER BY started").fetchall()
        return [{"id": r["id"], "started": r["started"], "backend": r["backend"],
                 "record": json.loads(r["record"])} for r in rows]

    def find_cached(self, cache_key: str) -> CallRecord | None:
        """The most recent original (non-cached) call with this cache key whose outputs are intact."""
        if not self.exists:
            return None
        with self._db() as con:
            rows = con.execute(
                "SELECT * FROM calls WHERE cache_key = ? AND cached_from IS NULL ORDER BY seq DESC",
                (cache_key,),
            ).fetchall()
        for row in rows:
            record = self._call_from_row(row)
            outputs = [self.get_artifact(a) for a in record.outputs]
            if all(a is not None and self.artifact_intact(a) for a in outputs):
                return record
        return None

    @staticmethod
    def _call_from_row(row: sqlite3.Row) -> CallRecord:
        return CallRecord(
            id=row["id"],
            seq=row["seq"],
            tool=row["tool"],
            tool_version=row["tool_version"],
            inputs=json.loads(row["inputs"]),
            input_artifacts=json.loads(row["input_artifacts"]),
            outputs=json.loads(row["outputs"]),
            result=json.loads(row["result"]),
            seed=row["seed"],
            started=row["started"],
            wall_s=row["wall_s"],
            packages=json.loads(row["packages"]),
            cache_key=row["cache_key"],
            cached_from=row["cached_from"],
            session=row["session"],
        )


def strict_json(value: Any) -> str:
    """Provenance is strict JSON: a NaN or ±inf raises ``ValueError`` here instead of being stored as
    ``NaN``, which no JSON reader (``history --json``, an exported script) would accept."""
    return json.dumps(value, allow_nan=False)


def _finite_or_text(value: Any) -> Any:
    """A session record (what a model asked for, even if refused) with non-finite numbers as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite_or_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_text(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)
