r"""Where physagent keeps what every workspace of this user can share: ``$PHYSAGENT_CACHE``, else
``$XDG_CACHE_HOME/physagent``, else ``~/.cache/physagent``.

Holds data that is expensive to rebuild but safe to lose (vectors of the bundled books, the embedded
model's saved prompt state): deleting the folder only costs time.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_VARIABLE", "user_cache_dir"]

CACHE_VARIABLE = "PHYSAGENT_CACHE"


def user_cache_dir(name: str) -> Path:
    """The folder ``name`` inside physagent's per-user cache (not created).

    >>> os.environ[CACHE_VARIABLE] = "/tmp/pa-cache"; str(user_cache_dir("sample-vectors"))
    '/tmp/pa-cache/sample-vectors'
    >>> del os.environ[CACHE_VARIABLE]
    """
    base = os.environ.get(CACHE_VARIABLE) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        "physagent"
    return Path(base).expanduser() / name
