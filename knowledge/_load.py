r"""Read a file into titled sections: Markdown, plain text, PDF, HTML, Jupyter notebooks, Python sources.

Every failure a user can cause (an empty, binary, encrypted, corrupt or oversized file) raises
:class:`UnreadableFileError` with a reason that names what was wrong, so a batch can skip the file
with a warning and carry on.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable
from pathlib import Path

from physagent.knowledge._sections import Section, split_markdown, split_sections

__all__ = ["MAX_FILE_MB", "SUPPORTED_SUFFIXES", "UnreadableFileError", "load_sections"]

MAX_FILE_MB = 50.0
_SNIFF_BYTES = 8192

# pypdf logs every malformed object it repairs; a corrupt file is reported once, by us
logging.getLogger("pypdf").setLevel(logging.ERROR)


class UnreadableFileError(Exception):
    """A file that cannot be ingested; the message says why."""


def load_sections(path: Path, notes: list[str], max_file_mb: float = MAX_FILE_MB) -> list[Section]:
    """The titled sections of ``path``, read according to its suffix; recoverable oddities go to ``notes``."""
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnreadableFileError(f"unsupported file type {path.suffix!r} (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    size_mb = path.stat().st_size / 1e6
    if size_mb > max_file_mb:
        raise UnreadableFileError(f"{size_mb:.0f} MB is over the {max_file_mb:.0f} MB limit per file "
                                  "(split it, or raise max_file_mb)")
    if size_mb == 0:
        raise UnreadableFileError("the file is empty")
    sections = [s for s in loader(path, notes) if s.text.strip()]
    if not sections:
        raise UnreadableFileError("no text found in the file")
    return sections


def _read_text(path: Path, notes: list[str]) -> str:
    """Text of a file that must not be binary; UTF-8, else Latin-1 (every byte decodes)."""
    data = path.read_bytes()
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise UnreadableFileError("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        notes.append(f"not UTF-8 (byte {err.start}); read as Latin-1")
        return data.decode("latin-1")


def _title_from_name(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ")


def _load_text(path: Path, notes: list[str]) -> list[Section]:
    return split_sections(_read_text(path, notes), _title_from_name(path))


def _load_markdown(path: Path, notes: list[str]) -> list[Section]:
    return split_markdown(_read_text(path, notes), _title_from_name(path))


def _load_python(path: Path, notes: list[str]) -> list[Section]:
    source = _read_text(path, notes)
    try:
        docstring = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        docstring = ""
    title = docstring.splitlines()[0].strip() if docstring else path.name
    return [Section(title, source)]


def _load_pdf(path: Path, notes: list[str]) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError("the PDF is encrypted (give a decrypted copy)")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or _title_from_name(path)
    except UnreadableFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as err:
        raise UnreadableFileError(f"not a readable PDF ({type(err).__name__}: {err})") from err
    return [Section(str(title), text, page=number) for number, text in enumerate(pages, start=1)]


def _load_html(path: Path, notes: list[str]) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path, notes), "html.parser")
    for junk in soup(["script", "style", "nav", "footer"]):
        junk.decompose()
    title = soup.title.get_text(strip=True) if soup.title else _title_from_name(path)
    # headings become Markdown headings, so sections follow the page's structure
    for heading in soup.find_all(["h1", "h2", "h3", "h4"]):
        heading.replace_with(f"\n{'#' * int(heading.name[1])} {heading.get_text(' ', strip=True)}\n")
    return split_markdown(soup.get_text("\n"), title)


def _load_notebook(path: Path, notes: list[str]) -> list[Section]:
    import nbformat

    try:
        notebook = nbformat.reads(_read_text(path, notes), as_version=4)
    except Exception as err:  # nbformat raises several unrelated types for a broken file
        raise UnreadableFileError(f"not a readable Jupyter notebook ({type(err).__name__}: {err})") from err
    cells = []
    for cell in notebook.cells:
        fence = "" if cell.cell_type == "markdown" else "```python\n"
        cells.append(f"{fence}{cell.source}{'' if not fence else chr(10) + '```'}")
    return split_markdown("\n\n".join(cells), _title_from_name(path))


_LOADERS: dict[str, Callable[[Path, list[str]], list[Section]]] = {
    ".md": _load_markdown, ".markdown": _load_markdown, ".txt": _load_text, ".text": _load_text,
    ".rst": _load_text, ".pdf": _load_pdf, ".html": _load_html, ".htm": _load_html,
    ".ipynb": _load_notebook, ".py": _load_python,
}
SUPPORTED_SUFFIXES = tuple(sorted(_LOADERS))
