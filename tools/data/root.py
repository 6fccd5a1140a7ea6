r"""ROOT files in and out through uproot: ``read_root`` and ``write_root``.

- ``read_root``: one TTree or RNTuple → Parquet. Branches uproot writes for a jagged record field
  (a counter ``nparticles`` plus ``particles_px``, ``particles_py``, …) are regrouped into the record
  ``particles: var * {px, py, …}``; RNTuple records come back as records. So
  ``generate_events`` → ``write_root`` → ``read_root`` returns the same events (momenta in GeV).
- ``write_root``: an ``events``, ``jets`` or ``table`` artifact → ``<tree>.root``. A TTree holds
  numbers and singly-jagged lists/records; an RNTuple holds any awkward type, including the doubly
  jagged jet constituents.

ROOT files carry creation times and UUIDs, so two writes of the same data differ byte for byte.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from physagent.tools._artifacts import Artifact, DataRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, one_line
from physagent.tools._io import read_parquet
from physagent.tools._registry import ToolResult, tool
from physagent.tools.data._common import LoadedData, store_array

__all__ = ["RootFile", "read_root", "write_root"]

RootFormat = Literal["ttree", "rntuple"]
_TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple")
_CHUNK_ENTRIES = 50_000


class RootFile(ToolResult):
    """A ROOT file written from a workspace artifact."""

    root: Artifact = Field(description="The ROOT file artifact (kind 'root'), '<tree>.root'.")
    tree: str = Field(description="Name of the TTree or RNTuple in the file.")
    format: RootFormat = Field(description="'ttree' or 'rntuple'.")
    n_entries: int = Field(description="Entries (events or rows) written.")
    branches: list[str] = Field(description="Branch (TTree) or field (RNTuple) names in the file.")


@tool(category="data", cacheable=False)  # the file may change between reads
def read_root(
    path: Annotated[str, Field(description="Path of a local .root file in an allowed folder (uploads, the "
                      "current directory in the CLI, PHYSAGENT_DATA_DIRS); relative to the current directory.")],
    tree: Annotated[
        str | None, Field(description="Name of the TTree or RNTuple to read (None: the file's only one).")
    ] = None,
    branches: Annotated[
        list[str] | None, Field(json_schema_extra={"x-derived": True},
            description="Branches to read, e.g. ['particles', 'weight'] (a record "
                                "such as 'particles' brings all its branches); None reads all.")
    ] = None,
    entry_start: Annotated[int, Field(ge=0, description="First entry (event) to read, counting from 0.")] = 0,
    entry_stop: Annotated[
        int | None, Field(ge=1, description="Stop before this entry (None: read to the end).")
    ] = None,
    *,
    ctx: ToolContext,
) -> LoadedData:
    """Read a TTree or RNTuple from a ROOT file into a Parquet artifact.

    Jagged record branches (``nparticles`` + ``particles_px`` …) come back as records
    (``particles: var * {px, …}``); data with particles (px, py, pz, e in GeV, pid, charge) becomes
    an ``events`` artifact, anything else a ``table``.
    """
    file_path = ctx.input_file("path", path)
    file = _open_root(path, file_path)
    with file:
        name, classname = _pick_tree(file, tree, path)
        obj = file[name]
        start, stop = _entry_window(obj.num_entries, entry_start, entry_stop)
        reader = _read_rntuple if classname == "ROOT::RNTuple" else _read_ttree
        array = reader(obj, branches, start, stop)
    summary = f"{len(array):,} entries of {classname} '{name}' from {file_path.name}"
    metadata = {"source_path": str(file_path), "tree": name, "tree_class": classname,
                "entry_start": start, "entry_stop": stop}
    return store_array(ctx, array, summary, metadata)


@tool(category="data")
def write_root(
    source: Annotated[
        DataRef, Field(description="Id of an events, jets or table artifact.")
    ],
    tree: Annotated[
        str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of the tree in the file; the "
                   "file is '<tree>.root'.")
    ] = "events",
    format: Annotated[
        RootFormat, Field(description="'ttree' (classic, readable everywhere; numbers and singly-jagged "
                          "records) or 'rntuple' (ROOT 6.34+; any nesting, e.g. jet constituents).")
    ] = "ttree",
    *,
    ctx: ToolContext,
) -> RootFile:
    """Write an events, jets or table artifact to a ROOT file as a TTree or RNTuple.

    Jagged records become a counter plus one branch per field in a TTree (``nparticles``,
    ``particles_px`` …); doubly-jagged data (jet constituents) needs format='rntuple'.
    """
    import uproot

    source_artifact = ctx.artifact(source, "source")
    array = read_parquet(source_artifact.path)
    if format == "ttree":
        _check_ttree_types(array)
    pending = ctx.new_artifact("root")
    target = pending.directory / f"{tree}.root"
    with _reproducible_writes(), uproot.recreate(target, uuid_function=_uuid_from(source_artifact.sha256)) as file:
        if format == "ttree":
            _write_ttree(file, tree, array)
        else:
            file[tree] = array
    with uproot.open(target) as file:
        names = list(file[tree].keys())
    summary = f"{len(array):,} entries of {source} as {format} '{tree}' ({len(names)} branches)"
    artifact = pending.finish(target.name, summary, {"source": source, "tree": tree, "format": format,
                                                       "n_entries": len(array), "branches": names})
    return RootFile(root=artifact, tree=tree, format=format, n_entries=len(array), branches=names)


@contextlib.contextmanager
def _reproducible_writes() -> Iterator[None]:
    """Freeze the clock uproot stamps into ROOT headers (fDatime), as SOURCE_DATE_EPOCH does for builds.

    ROOT files carry their creation time and a UUID; with both fixed, identical content gives
    identical bytes, so artifact hashes — and exported reproduction scripts — can be checked.
    """
    import sys

    import uproot.writing  # noqa: F401 — loads every writer module before their clocks are frozen

    seconds = int(os.environ.get("SOURCE_DATE_EPOCH", "946684800"))  # default 2000-01-01 UTC
    epoch = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(tzinfo=None)
    frozen = types.SimpleNamespace(datetime=types.SimpleNamespace(now=lambda: epoch))
    modules = [module for name, module in list(sys.modules.items())
               if name.startswith("uproot.writing") and getattr(module, "datetime", None) is datetime]
    originals = [module.datetime for module in modules]
    for module in modules:
        setattr(module, "datetime", frozen)  # noqa: B010
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            setattr(module, "datetime", original)  # noqa: B010


def _uuid_from(content_sha256: str) -> Any:
    """UUIDs derived from the content written, in call order: same content, same UUIDs."""
    counter = itertools.count()
    return lambda: uuid.uuid5(uuid.NAMESPACE_URL, f"physagent:{content_sha256}:{next(counter)}")


# reading ---------------------------------------------------------------------------------------


def _open_root(path: str, file_path: Path) -> Any:
    import uproot

    try:
        return uproot.open(file_path)
    except Exception as exc:  # uproot raises many types for a file that is not ROOT
        raise ToolInputError.for_param(
            "read_root", "path", path, f"is not a readable ROOT file ({_why_not_root(file_path, exc)}). "
            "Give a .root file written by ROOT or uproot.",
        ) from None


def _why_not_root(file_path: Path, exc: Exception) -> str:
    """What was wrong, in words: uproot's own complaint about a non-ROOT file is a few lines of byte counts."""
    try:
        with open(file_path, "rb") as handle:
            signature = handle.read(4)
    except OSError as error:
        return one_line(error)
    return "it does not start with the ROOT signature 'root'" if signature != b"root" else one_line(exc)


def list_trees(file: Any) -> dict[str, str]:
    """Name → class of every TTree and RNTuple in an open file (subdirectories as 'dir/name')."""
    found = {}
    for key, classname in file.classnames(recursive=True).items():
        if classname in _TREE_CLASSES:
            found[key.rsplit(";", 1)[0]] = classname
    return found


def _pick_tree(file: Any, tree: str | None, path: str) -> tuple[str, str]:
    trees = list_trees(file)
    listing = ", ".join(f"{name} ({cls})" for name, cls in trees.items()) or "none"
    if tree is not None and tree in trees:
        return tree, trees[tree]
    if tree is not None:
        raise ToolInputError.for_param(
            "read_root", "tree", tree, f"is not in {path}. Trees and RNTuples in the file: {listing}."
        )
    if len(trees) == 1:
        return next(iter(trees.items()))
    problem = "holds no TTree or RNTuple" if not trees else f"holds several trees: {listing}"
    raise ToolInputError.for_param("read_root", "tree", None, f"is ambiguous: {path} {problem}. "
                                   "Pass tree=<name> for one of them.")


def _entry_window(n_entries: int, start: int, stop: int | None) -> tuple[int, int]:
    stop = n_entries if stop is None else min(stop, n_entries)
    if start >= max(n_entries, 1):
        raise ToolInputError.for_param(
            "read_root", "entry_start", start, f"is past the last entry; the tree has {n_entries} entries."
        )
    if stop <= start:
        raise ToolInputError.for_param(
            "read_root", "entry_stop", stop, f"must be larger than entry_start={start}."
        )
    return start, stop


def ttree_layout(tree: Any) -> dict[str, list[tuple[str, str | None]]]:
    """Top-level name → its (branch, record field) pairs; counters of jagged branches are dropped.

    A branch ``X_f`` counted by ``nX`` is field ``f`` of record ``X`` (uproot's and NanoAOD's
    convention); a jagged branch with any other name stays a plain list.
    """
    counters = {b.count_leaf.member("fName") for b in tree.branches if b.count_leaf is not None}
    names = {branch.name for branch in tree.branches}
    layout: dict[str, list[tuple[str, str | None]]] = {}
    for branch in tree.branches:
        if branch.name in counters:
            continue  # ak.num of the counted branches gives it back
        counter = branch.count_leaf.member("fName") if branch.count_leaf is not None else ""
        prefix = counter[1:] if counter.startswith("n") else ""
        if prefix and branch.name.startswith(prefix + "_") and prefix not in names:
            layout.setdefault(prefix, []).append((branch.name, branch.name[len(prefix) + 1:]))
        else:
            layout[branch.name] = [(branch.name, None)]
    return layout


def _select(available: list[str], branches: list[str] | None) -> list[str]:
    if branches is None:
        return available
    unknown = [name for name in branches if name not in available]
    if unknown:
        raise ToolInputError.for_param(
            "read_root", "branches", unknown, f"are not in the tree. Available: {', '.join(available)}."
        )
    return [name for name in available if name in branches]


def _read_ttree(tree: Any, branches: list[str] | None, start: int, stop: int) -> Any:
    import awkward as ak

    layout = ttree_layout(tree)
    names = _select(list(layout), branches)
    raw = tree.arrays([b for name in names for b, _ in layout[name]], entry_start=start,
                      entry_stop=stop, how=dict)
    columns = {}
    for name in names:
        members = layout[name]
        if members[0][1] is None:
            columns[name] = raw[members[0][0]]
        else:
            columns[name] = ak.zip({field: raw[branch] for branch, field in members})
    return ak.zip(columns, depth_limit=1)


def _read_rntuple(ntuple: Any, branches: list[str] | None, start: int, stop: int) -> Any:
    top = [field.name for field in ntuple.fields]
    names = _select(top, branches)
    return ntuple.arrays(names, entry_start=start, entry_stop=stop)


# writing ---------------------------------------------------------------------------------------


def _check_ttree_types(array: Any) -> None:
    """Refuse, before writing anything, a field a TTree cannot hold (never drop data silently)."""
    import awkward as ak

    for name in ak.fields(array):
        entry_type = array[name].type.content
        why = ttree_problem(entry_type)
        if why:
            raise ToolInputError.for_param(
                "write_root", "format", "ttree", f"cannot store field {name!r} of type {entry_type} "
                f"({why}); TTree branches hold numbers and singly-jagged lists or records of numbers. "
                "Use format='rntuple', which stores any awkward type, so no data is dropped.",
            )


def ttree_problem(entry_type: Any) -> str | None:
    """Why a TTree cannot hold one entry of this awkward type, or None when it can."""
    import awkward as ak

    types = ak.types
    if isinstance(entry_type, types.NumpyType):
        return None
    if isinstance(entry_type, types.OptionType):
        return "it has missing values"
    if entry_type.parameter("__array__") in ("string", "bytestring"):
        return "it holds strings"
    if isinstance(entry_type, types.RecordType):
        return "a record per entry, not a list"
    content = entry_type.content
    if isinstance(content, types.RecordType):
        inner = [c for c in content.contents if not isinstance(c, types.NumpyType)]
        return "it is doubly jagged: a list of records with list fields" if inner else None
    return None if isinstance(content, types.NumpyType) else "it is doubly jagged or nested"


def _write_ttree(file: Any, name: str, array: Any) -> None:
    import awkward as ak

    fields = ak.fields(array)
    tree = file.mktree(
        name, {f: array[f].type.content for f in fields},
        counter_name=lambda counted: "n" + counted,
        field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner,
    )
    for begin in range(0, len(array), _CHUNK_ENTRIES):
        chunk = array[begin:begin + _CHUNK_ENTRIES]
        tree.extend({f: chunk[f] for f in fields})
