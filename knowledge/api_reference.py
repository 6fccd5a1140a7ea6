r"""The API reference of the installed physics and ML libraries, read from the packages themselves.

Generated code must use the API that is installed, not the one a model remembers: every public
function, class and method of the modules below is recorded with its real signature
(``inspect.signature``; for compiled pybind11/SWIG functions, the signature lines of the docstring)
and the start of its docstring. One document per module, keyed by the installed version, so an
upgrade re-indexes that module and nothing else.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from physagent.knowledge._load import UnreadableFileError
from physagent.knowledge._sections import Section
from physagent.knowledge.store import IngestReport, KnowledgeBase, SourceDocument

__all__ = ["API_MODULES", "api_documents", "api_entries", "sync_api_reference"]

# module → distribution whose version keys it; what generated analysis code reaches for
API_MODULES: dict[str, str] = {
    "uproot": "uproot", "awkward": "awkward", "hist": "hist", "hist.axis": "hist", "vector": "vector",
    "fastjet": "fastjet", "pythia8mc": "pythia8mc", "numpy": "numpy", "numpy.random": "numpy",
    "numpy.linalg": "numpy", "scipy.stats": "scipy", "scipy.optimize": "scipy", "scipy.interpolate": "scipy",
    "scipy.integrate": "scipy", "matplotlib.pyplot": "matplotlib", "mplhep": "mplhep", "torch": "torch",
    "torch.nn": "torch", "torch.optim": "torch", "torch.utils.data": "torch", "sbi.inference": "sbi",
    "sbi.utils": "sbi", "sbi.analysis": "sbi", "sbi.diagnostics": "sbi", "zuko.flows": "zuko",
    "zuko.distributions": "zuko", "hls4ml": "hls4ml", "hls4ml.converters": "hls4ml", "hls4ml.utils": "hls4ml",
    "hls4ml.model": "hls4ml", "pyhf": "pyhf", "pyhf.infer": "pyhf", "pyhf.simplemodels": "pyhf",
    "particle": "particle", "hepunits": "hepunits", "pyhepmc": "pyhepmc", "pylhe": "pylhe",
}
# huge compiled namespaces: only the classes a user scripts against
_ONLY = {
    "pythia8mc": {"Pythia", "Event", "Particle", "Vec4", "Info", "Settings", "ParticleData", "Hist"},
    "torch": {"tensor", "zeros", "ones", "arange", "linspace", "randn", "rand", "manual_seed", "no_grad",
              "save", "load", "from_numpy", "cat", "stack", "where", "sigmoid", "softmax", "argmax", "device",
              "set_num_threads", "Tensor"},
}
_NO_METHODS = {"matplotlib.pyplot"}  # its classes (Figure, Axes, …) would add ~600 methods
_DOC_CHARS = 700
_EXTRACTOR_VERSION = "1"


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if not names or len(names) < 5:  # e.g. fastjet's __all__ lists only its version
        names = [n for n in dir(module) if not n.startswith("_")]
    only = _ONLY.get(module.__name__)
    return sorted(n for n in names if only is None or n in only)


def _signature(name: str, obj: Any) -> str:
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        doc = inspect.getdoc(obj) or ""
        short = name.rsplit(".", maxsplit=1)[-1]
        lines = [line for line in doc.splitlines() if line.lstrip("0123456789. ").startswith(short + "(")]
        return "\n".join(lines[:4]) or f"{name}(...)"


def _entry(qualname: str, obj: Any) -> Section:
    doc = inspect.getdoc(obj) or ""
    if len(doc) > _DOC_CHARS:
        doc = doc[:_DOC_CHARS].rsplit("\n", 1)[0] + "\n…"
    return Section(qualname, f"{_signature(qualname, obj)}\n\n{doc}".strip())


def _methods(cls: type) -> Iterator[tuple[str, Any]]:
    for name, member in vars(cls).items():
        if name.startswith("_") or not callable(member if not isinstance(member, staticmethod | classmethod)
                                                else member.__func__):
            continue
        yield name, getattr(cls, name, member)


def api_entries(module_name: str) -> list[Section]:
    """One section per public function, class and (own, public) method of ``module_name``."""
    module = importlib.import_module(module_name)
    root = module_name.split(".", maxsplit=1)[0]
    sections = []
    for name in _public_names(module):
        obj = getattr(module, name, None)
        if obj is None or inspect.ismodule(obj) or not callable(obj):
            continue
        if not (getattr(obj, "__module__", None) or root).startswith(root):
            continue  # re-exported from another package (numpy inside scipy, ...)
        qualname = f"{module_name}.{name}"
        sections.append(_entry(qualname, obj))
        if inspect.isclass(obj) and module_name not in _NO_METHODS:
            sections.extend(_entry(f"{qualname}.{m}", member) for m, member in _methods(obj))
    return sections


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def api_documents(modules: list[str] | None = None) -> list[SourceDocument]:
    """One document per module of the installed libraries (missing ones are left out)."""
    documents = []
    for module_name in modules or list(API_MODULES):
        version = _version(API_MODULES.get(module_name, module_name.split(".")[0]))
        if version == "not installed":
            continue
        sha = hashlib.sha256(f"{module_name}=={version}/{_EXTRACTOR_VERSION}".encode()).hexdigest()
        documents.append(SourceDocument(f"api:{module_name}", f"{module_name} {version}", sha,
                                        _reader(module_name)))
    return documents


def _reader(module_name: str) -> Callable[[list[str]], list[Section]]:
    def read(notes: list[str]) -> list[Section]:
        try:
            return api_entries(module_name)
        except ImportError as err:
            raise UnreadableFileError(f"cannot import {module_name}: {err}") from err

    return read


def sync_api_reference(kb: KnowledgeBase, modules: list[str] | None = None,
                       progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
    """Index the API reference of the installed libraries (only modules whose version changed)."""
    documents = api_documents(modules)
    if modules is None:
        return kb.sync("api", documents, progress)
    return kb.add_documents("api", documents, progress)
