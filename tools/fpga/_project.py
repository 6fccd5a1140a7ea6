r"""The ``hls_project`` artifact (id prefix ``hls``): a firmware project and what it was made from.

Files:

- ``hls_project/`` — the project directory hls4ml (or conifer, for a BDT) wrote: firmware sources, the
  build scripts (``build_prj.tcl``, ``build_lib.sh``), ``hls4ml_config.yml`` and the compiled C simulation
  library (``firmware/myproject-<stamp>.so``);
- ``hls_project.tar.gz`` — the primary file: that directory without compiled binaries, to unpack and
  build elsewhere (``./build_lib.sh`` for the C simulation, ``vitis-run --tcl build_prj.tcl --mode hls``
  or ``vivado_hls -f build_prj.tcl`` for synthesis). Written byte-reproducibly (sorted, no timestamps);
- ``hls4ml_config.json`` — the configuration (for a BDT: ``conifer_config.json``);
- ``report.json`` — model, settings, layers with their fixed-point types, the float-vs-fixed comparison
  when a dataset was given, and warnings;
- ``fixed_point.png`` — float vs fixed outputs and scores, when a dataset was given.

The files hold no artifact ids and no timings (those go into the artifact record), so a rerun with the
same inputs gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolInputError

__all__ = ["PROJECT_DIR", "REPORT_FILE", "SYNTHESIS_NOTE", "TARBALL", "ProjectInfo", "read_project", "write_json_file",
           "write_tarball"]

PROJECT_DIR = "hls_project"
TARBALL = "hls_project.tar.gz"
REPORT_FILE = "report.json"
_BINARIES = (".so", ".o", ".a", ".pyc")
SYNTHESIS_NOTE = ("Latency and resources are not estimated here: they come only from synthesis. Run "
                  "synthesize_fpga where Vitis HLS (vitis-run) or Vivado HLS (vivado_hls) is installed.")


@dataclass(frozen=True)
class ProjectInfo:
    """What compare_fixed_point and synthesize_fpga need to know about an hls_project artifact."""

    artifact: Artifact
    converter: str  # hls4ml or conifer
    model_id: str
    model_sha256: str
    settings: dict[str, Any]
    project: dict[str, Any]

    @property
    def directory(self) -> Path:
        return self.artifact.directory / PROJECT_DIR

    @property
    def precision(self) -> str:
        return str(self.settings["precision"])


def read_project(tool: str, artifact: Artifact, param: str = "project") -> ProjectInfo:
    """The recorded facts of an hls_project artifact; a foreign or damaged one is refused."""
    meta = artifact.metadata
    try:
        return ProjectInfo(artifact, str(meta["converter"]), str(meta["model"]["id"]), str(meta["model"]["sha256"]),
                           dict(meta["settings"]), dict(meta["project"]))
    except (KeyError, TypeError):
        raise ToolInputError.for_param(tool, param, artifact.id, "lacks the record export_fpga writes (converter, "
                                       "model, settings). Export the model again with export_fpga.") from None


def write_tarball(source: Path, path: Path, root: str = PROJECT_DIR) -> list[str]:
    """``source`` as a gzipped tar under ``root/``, without compiled binaries; same files, same bytes.

    Returns the archived names.
    """
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix not in _BINARIES)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for file in files:
            info = archive.gettarinfo(str(file), arcname=f"{root}/{file.relative_to(source).as_posix()}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if file.stat().st_mode & 0o111 else 0o644
            with file.open("rb") as handle:
                archive.addfile(info, handle)
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
        packed.write(buffer.getvalue())
    return [f"{root}/{f.relative_to(source).as_posix()}" for f in files]


def write_json_file(data: dict[str, Any], path: Path) -> None:
    """Indented, key-sorted JSON (the project's writer)."""
    from physagent.tools._io import write_json

    write_json(json.loads(json.dumps(data, default=str)), path)
