r"""ROOT files in and out through uproot: ``read_root`` and ``write_root``.

- ``read_root``: one TTree or RNTuple → Parquet. Branches uproot writes for a jagged record field
  (a counter ``nparticles`` plus ``particles_px``, ``particles_py``, …) are regrouped into the record
  ``particles: var * {px, py, …}``; RNTuple records come back as records. So
  ``generate_events`` → ``write_root`` → ``read_root`` returns the same events (momenta in GeV).
- ``read_root(schema=...)``: NanoAOD (``nJet`` + ``Jet_pt`` …, ``GenPart_*``) and Delphes (``Particle.PT``,
  ``Jet.PT`` …) trees become our collections (``particles``, ``partons``, ``jets``, ``muons``, ``met``, ``weight``;
  see :mod:`tools.data._schemas`); momenta of flat trees are converted to GeV (``units``, the file's unit note,
  or a reported guess; :mod:`tools.data._units`).
- ``write_root``: an ``events``, ``jets`` or ``table`` artifact → ``<tree>.root``. A TTree holds
  numbers and singly-jagged lists/records; an RNTuple holds any awkward type, including the doubly
  jagged jet constituents. ``schema='nanoaod'``/``'delphes'`` writes the inverse mapping.

ROOT files carry creation times and UUIDs, so two writes of the same data differ byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from physagent.tools._artifacts import Artifact, DataRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, one_line
from physagent.tools._io import read_parquet
from physagent.tools._registry import ToolResult, tool
from physagent.tools.data import _schemas
from physagent.tools.data._common import FileNotes, LoadedData, store_array, with_weight
from physagent.tools.data._rootio import reproducible_writes, uuid_from
from physagent.tools.data._schemas import ParticlesFrom, Schema
from physagent.tools.data._units import Units, choose_units, unit_hint

__all__ = ["RootFile", "read_root", "write_root"]

RootFormat = Literal["ttree", "rntuple"]
WriteSchema = Literal["native", "nanoaod", "delphes"]
_DEFAULT_TREE = {"native": "events", "nanoaod": "Events", "delphes": "Delphes"}
_TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple")
_CHUNK_ENTRIES = 50_000


class RootFile(ToolResult):
    """A ROOT file written from a workspace artifact."""

    root: Artifact = Field(description="The ROOT file artifact (kind 'root'), '<tree>.root'.")
    tree: str = Field(description="Name of the TTree or RNTuple in the file.")
    format: RootFormat = Field(description="'ttree' or 'rntuple'.")
    n_entries: int = Field(description="Entries (events or rows) written.")
    branches: list[str] = Field(description="Branch (TTree) or field (RNTuple) names in the file.")


@tool(category="data", version="2", cacheable=False)  # v2: schemas, units, weight; the file may change
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
    schema: Annotated[
        Schema, Field(description="'auto' detects NanoAOD (nJet + Jet_pt …, GenPart_*) and Delphes (Particle.PT, "
                      "Jet.PT …) trees and maps them to particles/partons/jets/muons/met/weight in GeV; "
                      "'flat' keeps the branches as they are.")
    ] = "auto",
    units: Annotated[
        Units, Field(description="Unit of the file's momenta and energies; 'auto' follows the file's unit note "
                     "(TObjString 'units' or '[MeV]' in the tree title), else guesses (reported in warnings). "
                     "Everything is stored in GeV.")
    ] = "auto",
    particles_from: Annotated[
        ParticlesFrom, Field(description="Delphes only: 'truth' builds particles from the generator Particle "
                             "branch, 'eflow' from EFlowTrack/EFlowPhoton/EFlowNeutralHadron; 'auto' prefers truth.")
    ] = "auto",
    *,
    ctx: ToolContext,
) -> LoadedData:
    """Read a TTree or RNTuple from a ROOT file (flat, NanoAOD or Delphes) into a Parquet artifact.

    Jagged record branches (``nparticles`` + ``particles_px`` …) come back as records
    (``particles: var * {px, …}``); NanoAOD and Delphes collections get our names (``jets``, ``muons``,
    ``particles`` …); momenta are stored in GeV. Data with particles (px, py, pz, e, pid, charge) becomes an
    ``events`` artifact (with a ``weight``), anything else a ``table``.
    """
    file_path = ctx.input_file("path", path)
    file = _open_root(path, file_path)
    with file:
        name, classname = _pick_tree(file, tree, path)
        obj = file[name]
        start, stop = _entry_window(obj.num_entries, entry_start, entry_stop)
        array, notes = _read_schema(obj, name, classname, path, branches, (start, stop), schema, particles_from)
        hint = unit_hint(file, obj)
    array, choice = choose_units("read_root", array, units, hint, notes.schema)
    notes.file_units, notes.units_source = choice.unit, choice.source
    notes.warnings += choice.warnings
    array = with_weight(array, always=notes.schema != "flat")
    summary = f"{len(array):,} entries of {classname} '{name}' from {file_path.name}"
    if notes.schema != "flat":
        summary += f" ({notes.schema})"
    metadata = {"source_path": str(file_path), "tree": name, "tree_class": classname,
                "entry_start": start, "entry_stop": stop}
    return store_array(ctx, array, summary, metadata, notes)


@tool(category="data")
def write_root(
    source: Annotated[
        DataRef, Field(description="Id of an events, jets or table artifact.")
    ],
    tree: Annotated[
        str | None, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of the tree in the file; the "
                          "file is '<tree>.root' (None: 'events'; 'Events' for NanoAOD, 'Delphes' for Delphes).",
                          json_schema_extra={"x-names": ["tree", "ttree", "rntuple"]})
    ] = None,
    format: Annotated[
        RootFormat, Field(description="'ttree' (classic, readable everywhere; numbers and singly-jagged "
                          "records) or 'rntuple' (ROOT 6.34+; any nesting, e.g. jet constituents).")
    ] = "ttree",
    schema: Annotated[
        WriteSchema, Field(description="Branch layout: 'native' (nparticles + particles_px …), 'nanoaod' (GenPart_*, "
                           "Jet_*, genWeight, as CMS NanoAOD) or 'delphes' (Particle.PT, Jet.PT, Event.Weight …); "
                           "read_root maps the last two back.")
    ] = "native",
    *,
    ctx: ToolContext,
) -> RootFile:
    """Write an events, jets or table artifact to a ROOT file as a TTree or RNTuple.

    Jagged records become a counter plus one branch per field in a TTree (``nparticles``,
    ``particles_px`` …); doubly-jagged data (jet constituents) needs format='rntuple'.
    schema='nanoaod' or 'delphes' writes a TTree laid out as those files are.
    """
    import uproot

    source_artifact = ctx.artifact(source, "source")
    array = read_parquet(source_artifact.path)
    columns = _columns_for(array, schema, format)
    tree = tree or _DEFAULT_TREE[schema]
    pending = ctx.new_artifact("root")
    target = pending.directory / f"{tree}.root"
    with reproducible_writes(), uproot.recreate(target, uuid_function=uuid_from(source_artifact.sha256)) as file:
        if format == "ttree":
            _write_ttree(file, tree, columns, delphes=schema == "delphes")
        else:
            file[tree] = array
    with uproot.open(target) as file:
        names = list(file[tree].keys())
    summary = f"{len(array):,} entries of {source} as {format} '{tree}' ({len(names)} branches)"
    if schema != "native":
        summary += f", {schema} layout"
    metadata = {"source": source, "tree": tree, "format": format, "n_entries": len(array), "branches": names}
    artifact = pending.finish(target.name, summary, metadata if schema == "native" else {**metadata, "schema": schema})
    return RootFile(root=artifact, tree=tree, format=format, n_entries=len(array), branches=names)


def _columns_for(array: Any, schema: str, format: str) -> dict[str, Any]:
    """Top-level name → column to write: the artifact's own fields, or the NanoAOD/Delphes mapping of them."""
    import awkward as ak

    if schema == "native":
        columns = {name: array[name] for name in ak.fields(array)}
    elif format != "ttree":
        raise ToolInputError.for_param(
            "write_root", "format", format, f"does not go with schema={schema!r}: NanoAOD and Delphes files are "
            "TTrees. Pass format='ttree' (or schema='native' for an RNTuple).",
        )
    else:
        columns = _schemas.to_nanoaod(array) if schema == "nanoaod" else _schemas.to_delphes(array)
    if format == "ttree":
        _check_ttree_types(columns, schema)
    return columns




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


def _read_schema(
    obj: Any, name: str, classname: str, path: str, branches: list[str] | None, window: tuple[int, int],
    schema: str, particles_from: str,
) -> tuple[Any, FileNotes]:
    """The tree read as its schema says (detected for 'auto'), with what was learnt on the way."""
    start, stop = window
    if classname == "ROOT::RNTuple":
        if schema in ("nanoaod", "delphes"):
            raise ToolInputError.for_param("read_root", "schema", schema, f"applies to TTrees; '{name}' in "
                                           f"{path} is an RNTuple. Pass schema='auto'.")
        return _read_rntuple(obj, branches, start, stop), FileNotes()
    all_names = [branch.name for branch in obj.itervalues(recursive=True)]
    chosen = _schemas.check_fits(schema, all_names, name, path)
    if particles_from == "eflow" and chosen != "delphes":
        raise ToolInputError.for_param("read_root", "particles_from", "eflow", "applies to Delphes files; this "
                                       f"one is read as {chosen}. Pass particles_from='auto'.")
    if chosen == "delphes":
        return _read_delphes(obj, branches, start, stop, particles_from, schema)
    if chosen == "flat":
        return _read_ttree(obj, branches, start, stop), FileNotes()
    layout = ttree_layout(obj)
    wanted = None
    if branches is not None:
        names, extras = _schemas.file_names("nanoaod", branches)
        wanted = names + [extra for extra in extras if extra in layout]
    array, warnings = _schemas.from_nanoaod(_read_ttree(obj, wanted, start, stop), schema)
    return array, FileNotes(schema="nanoaod", warnings=warnings)


def _read_delphes(
    tree: Any, branches: list[str] | None, start: int, stop: int, particles_from: str, schema: str
) -> tuple[Any, FileNotes]:
    found = {b.name: b for b in tree.itervalues(recursive=True)}
    layout, skipped = _schemas.delphes_layout((name, _interpretation(b)) for name, b in found.items())
    chosen = list(layout)
    if branches is not None:
        names, extras = _schemas.file_names("delphes", branches)
        chosen = _select(list(layout), names) + [extra for extra in extras if extra in layout]
    # branch by branch: real Delphes nests 'Jet.PT' under the TClonesArray 'Jet', and a read-all trips on TRefs
    groups = {group: {field: found[b].array(entry_start=start, entry_stop=stop, library="ak")
                      for b, field in layout[group]} for group in chosen}
    array, warnings = _schemas.from_delphes(groups, particles_from, schema)
    return array, FileNotes(schema="delphes", warnings=warnings, skipped_branches=skipped)


def _interpretation(branch: Any) -> Any:
    try:
        return branch.interpretation
    except Exception:  # uproot cannot interpret some streamed classes at all; such a branch is skipped
        return None


# writing ---------------------------------------------------------------------------------------


def _check_ttree_types(columns: dict[str, Any], schema: str = "native") -> None:
    """Refuse, before writing anything, a field a TTree cannot hold (never drop data silently)."""
    for name, column in columns.items():
        entry_type = column.type.content
        why = ttree_problem(entry_type)
        if why:
            fix = ("Use format='rntuple', which stores any awkward type, so no data is dropped." if schema == "native"
                   else f"A {schema} tree cannot hold it; write schema='native', format='rntuple' to keep it.")
            raise ToolInputError.for_param(
                "write_root", "format", "ttree", f"cannot store field {name!r} of type {entry_type} "
                f"({why}); TTree branches hold numbers and singly-jagged lists or records of numbers. {fix}",
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


def _write_ttree(file: Any, name: str, columns: dict[str, Any], delphes: bool = False) -> None:
    """Counters ``nX`` and branches ``X_f`` (ours, NanoAOD), or ``X_size`` and ``X.f`` (Delphes)."""
    sep, counter = (".", "{}_size") if delphes else ("_", "n{}")
    tree = file.mktree(
        name, {f: column.type.content for f, column in columns.items()},
        counter_name=counter.format,
        field_name=lambda outer, inner: inner if outer == "" else outer + sep + inner,
    )
    n_entries = len(next(iter(columns.values()))) if columns else 0
    for begin in range(0, n_entries, _CHUNK_ENTRIES):
        tree.extend({f: column[begin:begin + _CHUNK_ENTRIES] for f, column in columns.items()})
