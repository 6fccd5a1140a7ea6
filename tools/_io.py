"""Reading and writing the workspace's data formats (awkward arrays in Parquet, JSON cards)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["canonical", "read_parquet", "write_json", "write_parquet", "write_parquet_row_groups"]


def canonical(array: Any) -> Any:
    """The array as it is after crossing a process boundary.

    Pickling turns absent layout parameters (None) into empty ones ({}), and awkward writes them
    into the Parquet metadata; normalising every array the same way keeps the file bytes — and so
    the artifact hash — independent of whether the data came from a worker process.
    """
    return pickle.loads(pickle.dumps(array))


def write_parquet(array: Any, path: Path) -> None:
    """Write one awkward array (zstd-compressed; byte-identical for identical arrays)."""
    import awkward as ak

    ak.to_parquet(canonical(array), path, compression="zstd")


def write_parquet_row_groups(arrays: Iterable[Any], path: Path) -> None:
    """Stream a sequence of awkward arrays with the same type into one file, one row group each."""
    import awkward as ak

    ak.to_parquet_row_groups((canonical(a) for a in arrays), path, compression="zstd")


def read_parquet(path: Path, columns: list[str] | None = None) -> Any:
    """Read an awkward array written by :func:`write_parquet` (optionally only some fields)."""
    import awkward as ak

    return ak.from_parquet(path, columns=columns)


def write_json(data: dict[str, Any], path: Path) -> None:
    """Deterministic JSON (sorted keys), so identical content gives identical hashes."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
