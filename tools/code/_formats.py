r"""Loading a declared output far enough to know it is usable: Parquet, ROOT, PNG, PDF, JSON, CSV, NumPy, HDF5, text.

Loaders read headers, not data: the Parquet footer, the ROOT keys, a verified PNG (PIL refuses
decompression bombs). Each returns a one-line summary and metadata for the artifact; a file that
does not load raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["FORMATS", "OutputInfo", "check_output_file"]


class OutputInfo(BaseModel):
    """What loading a declared output found."""

    name: str
    format: str
    summary: str
    metadata: dict[str, Any] = Field(default_factory=dict)


FORMATS = {".parquet": "Parquet", ".root": "ROOT", ".png": "PNG", ".pdf": "PDF", ".json": "JSON", ".csv": "CSV",
            ".npy": "NumPy .npy", ".npz": "NumPy .npz", ".h5": "HDF5", ".hdf5": "HDF5", ".txt": "text"}


def check_output_file(path: Path) -> OutputInfo:
    """Load ``path`` by its extension far enough to know it is usable; raise if it is not."""
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        return OutputInfo(name=path.name, format=suffix.lstrip(".") or "file", summary=f"{path.stat().st_size} bytes")
    summary, metadata = loader(path)
    return OutputInfo(name=path.name, format=FORMATS[suffix], summary=summary, metadata=metadata)


def _parquet(path: Path) -> tuple[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata  # footer only: no data pages are read
    columns = [meta.schema.column(i).path.split(".") for i in range(meta.num_columns)]
    fields = list(dict.fromkeys(parts[0] for parts in columns))
    particle_fields = sorted({parts[-1] for parts in columns if parts[0] == "particles" and len(parts) > 1})
    summary = f"Parquet, {meta.num_rows} rows, fields {', '.join(fields[:8])}"
    return summary, {"n_rows": meta.num_rows, "fields": fields, "particle_fields": particle_fields}


def _root(path: Path) -> tuple[str, dict[str, Any]]:
    import uproot

    with uproot.open(path) as file:
        keys = file.keys(cycle=False)
    if not keys:
        raise ValueError("the ROOT file holds no objects")
    return f"ROOT file with {', '.join(keys[:8])}", {"keys": keys}


def _png(path: Path) -> tuple[str, dict[str, Any]]:
    from PIL import Image

    with Image.open(path) as image:  # PIL refuses decompression bombs (> ~179 megapixels)
        image.verify()
        width, height = image.size
    if image.format != "PNG":
        raise ValueError(f"the file is {image.format}, not PNG")
    return f"PNG image {width}×{height} px", {"width_px": width, "height_px": height}


def _pdf(path: Path) -> tuple[str, dict[str, Any]]:
    with path.open("rb") as handle:
        start = handle.read(5)
        handle.seek(max(path.stat().st_size - 1024, 0))
        end = handle.read()
    if start != b"%PDF-" or b"%%EOF" not in end:
        raise ValueError("no PDF header or end-of-file marker")
    return "PDF document", {}


def _json(path: Path) -> tuple[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    kind = type(data).__name__
    size = f"{len(data)} entries" if isinstance(data, dict | list) else "a scalar"
    return f"JSON {kind}, {size}", {}


def _csv(path: Path) -> tuple[str, dict[str, Any]]:
    import csv

    with path.open(newline="") as handle:
        header = next(csv.reader(handle))
    return f"CSV with columns {', '.join(header[:8])}", {"columns": header}


def _numpy(path: Path) -> tuple[str, dict[str, Any]]:
    import numpy as np

    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return f"NumPy archive of {', '.join(archive.files[:8])}", {"arrays": archive.files}
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return f"NumPy array {array.dtype} {array.shape}", {"shape": list(array.shape), "dtype": str(array.dtype)}


def _hdf5(path: Path) -> tuple[str, dict[str, Any]]:
    import h5py

    with h5py.File(path, "r") as file:
        keys = list(file.keys())
    return f"HDF5 file with {', '.join(keys[:8])}", {"keys": keys}


def _text(path: Path) -> tuple[str, dict[str, Any]]:
    with path.open("rb") as handle:
        handle.read(1 << 20).decode("utf-8")
    return f"text, {path.stat().st_size} bytes", {}


_LOADERS = {".parquet": _parquet, ".root": _root, ".png": _png, ".pdf": _pdf, ".json": _json, ".csv": _csv,
            ".npy": _numpy, ".npz": _numpy, ".h5": _hdf5, ".hdf5": _hdf5, ".txt": _text}
