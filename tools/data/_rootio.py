"""Byte-reproducible ROOT writing shared by ``write_root`` and ``export_histograms``: a frozen header clock and
UUIDs derived from the content, so the same content always gives the same file (and the same artifact hash)."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import types
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = ["reproducible_writes", "uuid_from"]


@contextlib.contextmanager
def reproducible_writes() -> Iterator[None]:
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


def uuid_from(content_sha256: str) -> Any:
    """UUIDs derived from the content written, in call order: same content, same UUIDs."""
    counter = itertools.count()
    return lambda: uuid.uuid5(uuid.NAMESPACE_URL, f"physagent:{content_sha256}:{next(counter)}")
