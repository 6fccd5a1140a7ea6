r"""Split a document's text into titled sections: one per abstract in a book of abstracts, one per heading.

Books of abstracts come out of PDFs and web pages in a few recognisable shapes, tried in order:

* Indico books (a "Contents" list of ``title<TAB>page`` lines): the body is cut where those titles
  reappear as lines (titles wrapped over two lines and hyphenated at the break are matched too).
* Indico timetables: entries numbered by bullet lines (``• 12``) start with their title; without
  the numbers, talks end with a ``Speaker:`` line and a title is the first short line above the
  abstract.
* DPG programmes (``Title — ●AUTHOR — affiliation`` lines): the title is the text before the first dash.
* Markdown: ``#`` headings.

Anything else is one section titled by the file's first line. Titles keep the document's spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

__all__ = ["Section", "split_markdown", "split_sections"]

_CONTENTS_LINE = re.compile(r"^(?P<title>\S.*?)\s*(?:\.\s*)?\t\s*\d+\s*$")
_DPG_TITLE = re.compile(r"^(?P<title>[^—●]{8,300}?)\s+—\s+(?:●|[A-Z])")
_SPEAKER = re.compile(r"^\s*Speakers?:")
_ENTRY_NUMBER = re.compile(r"^\s*[•·*]\s*\d+\s*$")
_HEADING = re.compile(r"^(#{1,4})\s+(?P<title>.+?)\s*#*\s*$")
_LONG_LINE = 200
_MAX_TITLE = 250


@dataclass(frozen=True)
class Section:
    """A titled piece of a document; ``page`` where the format has pages (PDF), else None."""

    title: str
    text: str
    page: int | None = None


def split_sections(text: str, fallback_title: str) -> list[Section]:
    """Sections of a plain-text document, by the first shape that fits (see the module doc)."""
    lines = text.splitlines()
    for find_starts in (_indico_book_starts, _numbered_entry_starts, _timetable_starts, _dpg_starts):
        starts = find_starts(lines)
        if len(starts) >= 2:
            return _cut(lines, starts, _first_line(text) or fallback_title)
    return [Section(_first_line(text) or fallback_title, text.strip())]


def split_markdown(text: str, fallback_title: str) -> list[Section]:
    """Sections at Markdown headings (``#`` to ``####``); text before the first heading is kept."""
    lines = text.splitlines()
    starts = [(i, m["title"]) for i, line in enumerate(lines) if (m := _HEADING.match(line))]
    if not starts:
        return [Section(fallback_title, text.strip())] if text.strip() else []
    sections = []
    if head := "\n".join(lines[: starts[0][0]]).strip():
        sections.append(Section(fallback_title, head))
    for (start, title), (end, _) in zip(starts, [*starts[1:], (len(lines), "")], strict=True):
        body = "\n".join(lines[start:end]).strip()
        if body:
            sections.append(Section(title.strip(), body))
    return sections


def _first_line(text: str) -> str:
    return next((line.strip()[:_MAX_TITLE] for line in text.splitlines() if line.strip()), "")


def _normalise(text: str) -> str:
    """Letters and digits only, lower case: survives re-wrapping, ligatures and stray spaces."""
    return re.sub(r"[^0-9a-z]", "", text.casefold())


# --- Indico books of abstracts ------------------------------------------------------------------


def _contents_titles(lines: list[str]) -> tuple[list[str], int]:
    """Titles of the Contents list and the index of the line after it."""
    titles, last = [], -1
    for i, line in enumerate(lines):
        if m := _CONTENTS_LINE.match(line.strip("\n")):
            titles.append(m["title"].strip())
            last = i
        elif titles and i - last > 6:  # a long run of non-contents lines: the list has ended
            break
    return titles, last + 1


def _indico_book_starts(lines: list[str]) -> list[tuple[int, str]]:
    titles, body_start = _contents_titles(lines)
    return _title_positions(lines, body_start, titles) if len(titles) >= 2 else []


def _title_positions(lines: list[str], start: int, titles: list[str]) -> list[tuple[int, str]]:
    """Line index where each title appears in the body, sorted by position.

    Exact matches (a title may span two lines) first; then, for titles still missing, a line that
    embeds the title (``Session / 1**Title**``) or spells it nearly the same (``scaleable``).
    """
    wanted = {_normalise(t): t for t in titles}
    found, taken, i = [], set(), start
    while i < len(lines):
        one = _normalise(lines[i])
        two = one + _normalise(lines[i + 1]) if i + 1 < len(lines) else one
        key = one if one in wanted else two if two in wanted else None
        if key:
            found.append((i, wanted.pop(key)))
            taken.add(i)
        i += 2 if key and key != one else 1
    for key, title in wanted.items():
        if (at := _loose_position(lines, start, key, taken)) is not None:
            found.append((at, title))
            taken.add(at)
    return sorted(found)


def _loose_position(lines: list[str], start: int, key: str, taken: set[int]) -> int | None:
    for i in range(start, len(lines)):
        line = _normalise(lines[i])
        if i in taken or not line:
            continue
        if ("**" in lines[i] and key in line) or (
            abs(len(line) - len(key)) <= 3 and SequenceMatcher(None, line, key).ratio() > 0.93
        ):
            return i
    return None


def _cut(lines: list[str], starts: list[tuple[int, str]], preamble_title: str) -> list[Section]:
    """Sections from (line index, title) starts; each runs to the next start. Text before the first
    start (a cover page, a workshop description) is a section of its own."""
    ends = [s for s, _ in starts[1:]] + [len(lines)]
    preamble = "\n".join(lines[: starts[0][0]]).strip()
    sections = [Section(preamble_title, preamble)] if preamble else []
    for (start, title), end in zip(starts, ends, strict=True):
        body = "\n".join(lines[start:end]).strip()
        if body:
            sections.append(Section(title, body))
    return sections


# --- Indico timetables: "• 12", title, abstract, "Speaker: ..." ---------------------------------


def _numbered_entry_starts(lines: list[str]) -> list[tuple[int, str]]:
    """Timetable entries numbered by bullet lines (``• 108``): the title is the next non-blank line."""
    starts = []
    for i, line in enumerate(lines):
        if _ENTRY_NUMBER.match(line):
            title_at = next((j for j in range(i + 1, min(i + 4, len(lines))) if lines[j].strip()), None)
            if title_at is not None:
                starts.append((title_at, lines[title_at].strip()))
    return starts


def _timetable_starts(lines: list[str]) -> list[tuple[int, str]]:
    speakers = [i for i, line in enumerate(lines) if _SPEAKER.match(line)]
    if len(speakers) < 2:
        return []
    starts = []
    for previous, end in zip([-1, *speakers], speakers, strict=False):
        if (title_at := _timetable_title(lines, previous + 1, end)) is not None:
            starts.append((title_at, lines[title_at].strip()))
    return starts


def _timetable_title(lines: list[str], start: int, end: int) -> int | None:
    """The talk title above a ``Speaker:`` line at ``end``: the first short line above the abstract.

    Scans upwards over the abstract's (long) paragraph lines; a talk without an abstract is titled
    by the nearest short line above its speaker.
    """
    seen_abstract, nearest = False, None
    for i in range(end - 1, start - 1, -1):
        stripped = lines[i].strip()
        if not stripped:
            continue
        if len(stripped) > _LONG_LINE:
            seen_abstract = True
        elif seen_abstract:
            return i
        elif nearest is None:
            nearest = i
    return None if seen_abstract else nearest


# --- DPG programmes: "Title — ●AUTHOR — affiliation" ---------------------------------------------


def _dpg_starts(lines: list[str]) -> list[tuple[int, str]]:
    return [(i, m["title"].strip()) for i, line in enumerate(lines) if "●" in line and (m := _DPG_TITLE.match(line))]
