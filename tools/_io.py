"""Reading and writing the workspace's data formats (awkward arrays in Parquet, JSON cards)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["canonical", "parquet_batches", "read_parquet", "write_json", "write_parquet", "write_parquet_row_groups"]


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


def parquet_batches(path: Path, batch_size: int, columns: list[str], start: int = 0,
                    stop: int | None = None) -> Iterator[Any]:
    """Rows ``start`` to ``stop`` of a Parquet file as Arrow record batches of ``batch_size`` rows (the last one
    may be shorter), cut at ``start + k * batch_size`` whatever the file's row groups.

    Only the row groups holding those rows are read, so that workers can each take their own slice of a file.
    """
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    stop = parquet.metadata.num_rows if stop is None else stop
    groups, first_row = _row_groups_holding(parquet.metadata, start, stop)
    batches = parquet.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns)
    return _rebatched(batches, start - first_row, stop - start, batch_size)


def _row_groups_holding(metadata: Any, start: int, stop: int) -> tuple[list[int], int]:
    """The row groups that hold rows ``start`` to ``stop``, and the index of the first one's first row."""
    groups: list[int] = []
    first_row = row = 0
    for index in range(metadata.num_row_groups):
        size = metadata.row_group(index).num_rows
        if row + size > start and row < stop:
            first_row = row if not groups else first_row
            groups.append(index)
        row += size
    return groups, first_row


def _rebatched(batches: Iterable[Any], skip: int, wanted: int, batch_size: int) -> Iterator[Any]:
    """``wanted`` rows after the first ``skip`` of ``batches``, re-cut into batches of ``batch_size``."""
    import pyarrow as pa

    held: list[Any] = []
    for batch in batches:
        if skip >= len(batch):
            skip -= len(batch)
            continue
        held.append(batch.slice(skip))
        skip = 0
        while wanted and sum(len(b) for b in held) >= min(batch_size, wanted):
            joined = held[0] if len(held) == 1 else pa.concat_batches(held)
            size = min(batch_size, wanted)
            yield joined.slice(0, size)
            wanted -= size
            held = [joined.slice(size)] if len(joined) > size else []
        if not wanted:
            return


def write_json(data: dict[str, Any], path: Path) -> None:
    """Deterministic JSON (sorted keys), so identical content gives identical hashes."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
