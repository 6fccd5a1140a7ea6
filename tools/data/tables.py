r"""``read_table``: Parquet, CSV and HDF5 files into the workspace as awkward arrays in Parquet.

- Parquet: read with awkward, so jagged columns (``var * {px, …}``) stay jagged.
- CSV: read with pandas; a header row names the columns; numbers stay numbers, text stays text.
- HDF5: the datasets directly under the root (or under the group ``key``) with the same first
  dimension become columns; a 2-D dataset of shape (n, k) becomes a column of k-vectors.

Momenta and energies are stored in GeV: ``units`` given, else a guess from the median of the transverse-momentum
columns (pt, et, met, …; > 1000 → MeV), reported in the result's warnings. Data with particles (px, py, pz, e,
pid, charge) becomes an ``events`` artifact (with a ``weight``, 1.0 if the file has none) so the event tools take
it, anything else a ``table``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, one_line
from physagent.tools._registry import tool
from physagent.tools.data._common import FileNotes, LoadedData, check_not_empty_fields, store_array, with_weight
from physagent.tools.data._units import Units, choose_units

__all__ = ["read_table"]

TableFormat = Literal["auto", "parquet", "csv", "hdf5", "lhe", "hepmc3"]
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".h5": "hdf5", ".hdf5": "hdf5",
             ".hdf": "hdf5", ".lhe": "lhe", ".hepmc": "hepmc3", ".hepmc3": "hepmc3"}
_GENERATOR_FORMATS = ("lhe", "hepmc3")  # event records in GeV with their own cross-section: no unit guessing


@tool(category="data", version="2", cacheable=False)  # v2: units and weight; the file may change between reads
def read_table(
    path: Annotated[str, Field(description="Path of a local file in an allowed folder (uploads, the current "
                      "directory in the CLI, PHYSAGENT_DATA_DIRS); relative to the current directory.")],
    format: Annotated[
        TableFormat, Field(description="File format; 'auto' picks it from the suffix (.parquet/.pq, .csv, "
                           ".h5/.hdf5/.hdf, .lhe/.lhe.gz Les Houches events, .hepmc/.hepmc3 HepMC3 events).")
    ] = "auto",
    key: Annotated[
        str | None, Field(description="HDF5 only: the group whose datasets become columns, e.g. 'jets' "
                          "(None: the file's root group).")
    ] = None,
    units: Annotated[
        Units, Field(description="Unit of the file's momenta and energies (pt, e, mass, jet_pt … columns); "
                     "'auto' guesses from their median (reported in warnings). Everything is stored in GeV.")
    ] = "auto",
    *,
    ctx: ToolContext,
) -> LoadedData:
    """Read a Parquet, CSV or HDF5 table, or the events of an LHE or HepMC3 file, into a Parquet artifact.

    Columns keep their names; momenta are stored in GeV (converted from MeV when the file is in MeV). Data
    with particles (px, py, pz, e, pid, charge) becomes an ``events`` artifact, anything else a ``table``.
    """
    file_path = ctx.input_file("path", path)
    chosen = _pick_format(path, file_path, format)
    if key is not None and chosen != "hdf5":
        raise ToolInputError.for_param(
            "read_table", "key", key, f"only applies to HDF5 files; this file is read as {chosen}. "
            "Leave key unset.",
        )
    if chosen in _GENERATOR_FORMATS:
        return _read_generator_file(ctx, path, file_path, chosen, units)
    readers = {"parquet": _read_parquet, "csv": _read_csv, "hdf5": _read_hdf5}
    array = readers[chosen](path, file_path, key)
    check_not_empty_fields("read_table", "path", path, array)
    array, choice = choose_units("read_table", array, units, None, "flat")
    notes = FileNotes(file_units=choice.unit, units_source=choice.source, warnings=choice.warnings)
    metadata = {"source_path": str(file_path), "format": chosen, "key": key}
    summary = f"{len(array):,} rows from {chosen} file {file_path.name}"
    return store_array(ctx, with_weight(array), summary, metadata, notes)


def _read_generator_file(ctx: ToolContext, path: str, file_path: Path, chosen: str, units: str) -> LoadedData:
    """Events of a Les Houches or HepMC3 file: final-state particles, the hard process with its mother links,
    the event weights, and the cross-section and √s the file states."""
    from physagent.tools.data._generator_files import read_hepmc, read_lhe

    if units == "MeV":
        raise ToolInputError.for_param("read_table", "units", units, f"does not apply to {chosen} files, whose "
                                       "momenta are in GeV by their format. Leave units unset.")
    try:
        with warnings.catch_warnings():  # pylhe also warns its parse error; the raised one says it once
            warnings.simplefilter("ignore", RuntimeWarning)
            array, metadata = (read_lhe if chosen == "lhe" else read_hepmc)(file_path)
    except Exception as exc:  # pylhe/pyhepmc raise parser errors of several types on a file of another kind
        raise _unreadable(path, "LHE" if chosen == "lhe" else "HepMC3", exc) from None
    summary = f"{len(array):,} events from {chosen} file {file_path.name}"
    notes = FileNotes(schema=chosen, file_units="GeV", units_source="schema")
    return store_array(ctx, array, summary, {**metadata, "source_path": str(file_path)}, notes)


def _pick_format(path: str, file_path: Path, format: str) -> str:
    if format != "auto":
        return format
    if file_path.name.lower().endswith(".lhe.gz"):
        return "lhe"
    found = _SUFFIXES.get(file_path.suffix.lower())
    if found is None:
        raise ToolInputError.for_param(
            "read_table", "format", "auto", f"cannot tell the format of {path!r} from its suffix. "
            "Pass format='parquet', 'csv', 'hdf5', 'lhe' or 'hepmc3'.",
        )
    return found


def _unreadable(path: str, what: str, exc: Exception) -> ToolInputError:
    return ToolInputError.for_param(
        "read_table", "path", path, f"is not a readable {what} file ({one_line(exc)}). "
        "Check the file, or pass the right format.",
    )


def _read_parquet(path: str, file_path: Path, key: str | None) -> Any:
    import awkward as ak

    try:
        return ak.from_parquet(file_path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise _unreadable(path, "Parquet", exc) from None


def _read_csv(path: str, file_path: Path, key: str | None) -> Any:
    import pandas as pd

    try:
        frame = pd.read_csv(file_path)
    except Exception as exc:  # pandas raises several types for a malformed CSV
        raise _unreadable(path, "CSV", exc) from None
    return frame_to_awkward(frame)


def frame_to_awkward(frame: Any) -> Any:
    """A pandas DataFrame as an awkward record array: numeric columns as NumPy, text as strings."""
    import awkward as ak
    import pandas as pd

    columns = {}
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            columns[str(name)] = ak.from_numpy(values.to_numpy())
        else:
            columns[str(name)] = ak.Array([None if _missing(v) else str(v) for v in values])
    return ak.zip(columns, depth_limit=1)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read_hdf5(path: str, file_path: Path, key: str | None) -> Any:
    import h5py

    try:
        handle = h5py.File(file_path, "r")
    except Exception as exc:  # h5py raises OSError subclasses with varied messages
        raise _unreadable(path, "HDF5", exc) from None
    with handle:
        group = _hdf5_group(handle, key, path)
        return _hdf5_columns(group, key, path)


def _hdf5_group(handle: Any, key: str | None, path: str) -> Any:
    import h5py

    if key is None:
        return handle
    groups = sorted(name for name, item in handle.items() if isinstance(item, h5py.Group))
    if key not in handle or not isinstance(handle[key], h5py.Group):
        raise ToolInputError.for_param(
            "read_table", "key", key, f"is not a group in {path}. Groups at the top: "
            f"{', '.join(groups) or 'none'}.",
        )
    return handle[key]


def _hdf5_columns(group: Any, key: str | None, path: str) -> Any:
    import awkward as ak
    import h5py

    datasets = {name: item for name, item in group.items() if isinstance(item, h5py.Dataset)}
    subgroups = sorted(name for name, item in group.items() if isinstance(item, h5py.Group))
    where = f"group {key!r}" if key else "the root group"
    if not datasets:
        raise ToolInputError.for_param(
            "read_table", "key", key, f"selects {where} of {path}, which has no datasets. "
            f"Groups there: {', '.join(subgroups) or 'none'}; pass one as key.",
        )
    lengths = {name: (d.shape[0] if d.shape else None) for name, d in datasets.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values():
        shapes = ", ".join(f"{name}{datasets[name].shape}" for name in sorted(datasets))
        raise ToolInputError.for_param(
            "read_table", "key", key, f"selects {where} of {path}, whose datasets differ in length "
            f"({shapes}). Columns need one length; put them in one group and pass it as key.",
        )
    return ak.zip({name: ak.from_numpy(datasets[name][()]) for name in datasets}, depth_limit=1)
