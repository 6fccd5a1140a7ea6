r"""Running a tool call: validate → resolve artifacts → cache lookup → run → commit → record provenance.

Every front end calls :func:`call_tool`. Nothing is written to the workspace unless the call
succeeds; a cache hit returns the stored result and records that it did.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import platform
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ProgressSink, ToolContext
from physagent.tools._errors import ToolError, ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolResult, ToolSpec, registry
from physagent.tools._workspace import CallRecord, Workspace

__all__ = ["CallOutcome", "call_tool", "file_sha256", "package_versions"]

_RECORDED_PACKAGES = (
    "physagent", "numpy", "pydantic", "awkward", "pyarrow", "vector", "pythia8mc", "fastjet",
    "uproot", "hist", "matplotlib", "mplhep", "pandas", "h5py", "particle", "hepunits", "pyhepmc", "pylhe",
    "dask", "distributed", "dask-jobqueue",
)


@dataclass(frozen=True)
class CallOutcome:
    """What a front end gets back from a call."""

    call_id: str
    tool: str
    result: ToolResult
    cached: bool
    wall_s: float

    @property
    def artifacts(self) -> list[Artifact]:
        return self.result.artifacts()

    def to_json(self) -> dict[str, Any]:
        """One JSON document: the typed result and its artifacts (id, kind, path, hash, summary)."""
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "cached": self.cached,
            "wall_s": round(self.wall_s, 3),
            "result": self.result.model_dump(mode="json"),
            "artifacts": [
                {"id": a.id, "kind": a.kind, "path": str(a.path), "sha256": a.sha256, "summary": a.summary}
                for a in self.artifacts
            ],
        }


@functools.cache
def package_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results, for the provenance record."""
    versions = {"python": platform.python_version()}
    for name in _RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def call_tool(
    name: str,
    arguments: dict[str, Any] | None = None,
    *,
    workspace: Workspace | None = None,
    use_cache: bool = True,
    progress: ProgressSink | None = None,
    cancel_event: threading.Event | None = None,
    session: str | None = None,
) -> CallOutcome:
    """Validate and run one tool call in ``workspace``; raise a :class:`ToolError` on failure.

    ``session`` tags the provenance record with the agent session that made the call; the tool reads
    it as ``ctx.session``.
    """
    spec = registry.get(name)
    inputs = spec.validate(arguments or {})
    workspace = workspace or Workspace()
    input_hashes = _check_input_artifacts(spec, inputs, workspace)
    inputs_json = inputs.model_dump(mode="json")
    key = _cache_key(spec, inputs_json, input_hashes, _host_file_hashes(spec, inputs, workspace))
    if use_cache and spec.cacheable:
        hit = workspace.find_cached(key)
        if hit is not None:
            return _replay(spec, hit, workspace, session)
    return _run(spec, inputs, inputs_json, input_hashes, key, workspace, progress, cancel_event, session)


def _run(
    spec: ToolSpec,
    inputs: BaseModel,
    inputs_json: dict[str, Any],
    input_hashes: dict[str, str],
    key: str,
    workspace: Workspace,
    progress: ProgressSink | None,
    cancel_event: threading.Event | None,
    session: str | None,
) -> CallOutcome:
    call_id = f"c-{uuid.uuid4().hex[:10]}"
    started, t0 = time.time(), time.perf_counter()
    with workspace.staging_area() as staging:
        ctx = ToolContext(spec.name, workspace, staging, progress, cancel_event or threading.Event(), session=session)
        kwargs = {field: getattr(inputs, field) for field in type(inputs).model_fields}
        if spec.wants_context:
            kwargs["ctx"] = ctx
        result = _invoke(spec, kwargs)
        wall_s = time.perf_counter() - t0
        record = CallRecord(
            id=call_id, seq=0, tool=spec.name, tool_version=spec.version, inputs=inputs_json,
            input_artifacts=input_hashes, outputs=[a.id for a in result.artifacts()],
            result=result.model_dump(mode="json"), seed=inputs_json.get("seed"), started=started,
            wall_s=wall_s, packages=package_versions(), cache_key=key, cached_from=None, session=session,
        )
        _check_outputs_are_new(spec, result, ctx)
        _check_finite(spec, record.result, [p.artifact.metadata for p in ctx.pending if p.artifact])
        workspace.commit(ctx.pending, record)
    return CallOutcome(call_id, spec.name, result, cached=False, wall_s=wall_s)


def _invoke(spec: ToolSpec, kwargs: dict[str, Any]) -> ToolResult:
    try:
        return spec.function(**kwargs)
    except ToolError:
        raise
    except Exception as exc:  # a library failed: wrap it so every front end reports it the same way
        raise ToolRuntimeError(f"{spec.name}: failed with {type(exc).__name__}: {exc}") from exc


def _check_finite(spec: ToolSpec, result: Any, metadata: list[dict[str, Any]]) -> None:
    """Refuse a result holding NaN or ±inf before anything is committed: provenance is strict JSON."""
    where = _non_finite_at(result, "result") or _non_finite_at(metadata, "artifact metadata")
    if where:
        raise ToolRuntimeError(f"{spec.name}: {where} is not a finite number (NaN or ±inf), which the JSON "
                               "provenance record cannot hold; nothing was saved. Please report this bug.")


def _non_finite_at(value: Any, path: str) -> str | None:
    """Where in a JSON-like value the first non-finite float sits (None: nowhere)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((found for key, item in items if (found := _non_finite_at(item, f"{path}.{key}"))), None)


def _check_outputs_are_new(spec: ToolSpec, result: ToolResult, ctx: ToolContext) -> None:
    created = {p.id for p in ctx.pending}
    foreign = [a.id for a in result.artifacts() if a.id not in created]
    if foreign:
        raise ToolRuntimeError(f"{spec.name}: returned artifacts it did not create: {foreign}")


def _replay(spec: ToolSpec, hit: CallRecord, workspace: Workspace, session: str | None) -> CallOutcome:
    result = spec.result_model.model_validate(_refresh_artifacts(hit.result, workspace))
    record = CallRecord(
        id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool=hit.tool, tool_version=hit.tool_version,
        inputs=hit.inputs, input_artifacts=hit.input_artifacts, outputs=hit.outputs, result=hit.result,
        seed=hit.seed, started=time.time(), wall_s=0.0, packages=package_versions(),
        cache_key=hit.cache_key, cached_from=hit.id, session=session,
    )
    workspace.record_call(record)
    return CallOutcome(record.id, spec.name, result, cached=True, wall_s=0.0)


def _refresh_artifacts(value: Any, workspace: Workspace) -> Any:
    """Replace stored artifact records by the workspace's current ones (paths follow the workspace)."""
    if isinstance(value, list):
        return [_refresh_artifacts(item, workspace) for item in value]
    if not isinstance(value, dict):
        return value
    if {"id", "kind", "sha256", "path"} <= value.keys():
        current = workspace.get_artifact(value["id"])
        return current.model_dump(mode="json") if current else value
    return {k: _refresh_artifacts(v, workspace) for k, v in value.items()}


def _check_input_artifacts(spec: ToolSpec, inputs: BaseModel, workspace: Workspace) -> dict[str, str]:
    """Every artifact parameter names an existing artifact of an accepted kind; returns id → sha256."""
    hashes: dict[str, str] = {}
    for param, kinds in spec.artifact_params.items():
        value = getattr(inputs, param)
        for artifact_id in value if isinstance(value, list) else [value]:
            if artifact_id is None:
                continue
            artifact = workspace.get_artifact(artifact_id)
            if artifact is None or not workspace.artifact_intact(artifact):
                raise ToolInputError.for_param(
                    spec.name, param, artifact_id,
                    f"is not an artifact in the workspace {workspace.root}. "
                    "List them with `physagent artifacts list`.",
                )
            if artifact.kind not in kinds:
                raise ToolInputError.for_param(
                    spec.name, param, artifact_id,
                    f"is a {artifact.kind!r} artifact; this parameter takes {' or '.join(kinds)}.",
                )
            hashes[artifact_id] = artifact.sha256
    return hashes


def _host_file_hashes(spec: ToolSpec, inputs: BaseModel, workspace: Workspace) -> dict[str, str]:
    """sha256 of the host files the call names (``file_params``), resolved by the file-access rule as the tool
    will; a refused or missing path raises the error the tool itself would."""
    hashes = {}
    for param in spec.file_params:
        path = getattr(inputs, param)
        if path is not None:
            real = workspace.file_access.resolve(spec.name, param, path, workspace.root / "uploads")
            hashes[param] = file_sha256(real)
    return hashes


def file_sha256(path: Any) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (event files reach gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_key(spec: ToolSpec, inputs_json: dict[str, Any], input_hashes: dict[str, str],
               file_hashes: dict[str, str] | None = None) -> str:
    payload = {"tool": spec.name, "version": spec.version, "inputs": inputs_json, "artifacts": input_hashes}
    if file_hashes:  # only then: keys of tools without host files stay what they were
        payload["files"] = file_hashes
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
