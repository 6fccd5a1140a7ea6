"""Prompts are data: plain text files next to this module, read once."""

from __future__ import annotations

import functools
from importlib.resources import files

__all__ = ["prompt"]


@functools.cache
def prompt(name: str) -> str:
    """The text of ``<name>.md`` in this package."""
    return files(__package__).joinpath(f"{name}.md").read_text().strip()
