r"""Les Houches event files for ``generate_events(process='lhe')``: checks, Pythia settings, the card.

Pythia reads the file itself (``Beams:frameType = 4``, ``Beams:LHEF``) and showers and hadronises its
parton-level events; shard ``i`` skips the events of the shards before it (``Beams:nSkipLHEFatInit``), so
every event of the file is used at most once. √s comes from the beam energies of the ``<init>`` block
(√s = 2√(E_A E_B), massless beams). The cross-section follows the file's weighting strategy (IDWTUP):

- ±3 (unweighted, the MadGraph default): unit weights, σ = Σ XSECUP — Pythia's ``sigmaGen``;
- ±4: every event carries its weight XWGTUP in pb (negative ones at NLO) and σ = Σ w_i / N; the stored
  ``weight`` stays in pb (card ``weight_unit: pb``), so a histogram normalises with w_i·σ/Σw, never σ/N;
- ±1, ±2: Pythia unweights the events itself and estimates σ.

An event Pythia fails to shower is dropped (``n_failed``), not replaced by a later event of the file.
The init block is read with ``pylhe``. Reference: J. Alwall et al., "A standard format for Les Houches
Event Files", Comput. Phys. Commun. 176 (2007) 300, arXiv:hep-ph/0609017.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physagent.tools._errors import ToolInputError

__all__ = ["LheInfo", "LheRequest", "check_lhe_arguments", "inspect_lhe", "lhe_settings", "pythia_readable",
           "skip_settings", "warnings_for", "weight_card"]

_TOOL = "generate_events"
_DEFAULT_SQRT_S_TEV = 13.6


@dataclass(frozen=True)
class LheRequest:
    """The generate_events arguments that matter for a Les Houches file."""

    process: str
    path: str | None
    n_events: int
    seed: int
    shards: int | None
    switches: tuple[bool, bool, bool, bool]  # MPI, ISR, FSR, hadronisation
    settings: list[str]
    sqrt_s_tev: float


@dataclass(frozen=True)
class LheInfo:
    """What the file says about itself: events, beams, weighting strategy, cross-section."""

    source_path: str
    sha256: str
    n_events: int
    strategy: int
    sigma_lhe_pb: float  # Σ XSECUP over the file's processes
    sqrt_s_tev: float
    beams: tuple[int, int]

    def card(self) -> dict[str, Any]:
        return {"source_path": self.source_path, "sha256": self.sha256, "n_in_file": self.n_events,
                "strategy": self.strategy, "sigma_lhe_pb": self.sigma_lhe_pb, "beams": list(self.beams)}


def check_lhe_arguments(request: LheRequest, cuts: dict[str, Any]) -> str:
    """The Les Houches path, after refusing arguments that do not go with a file (by parameter name)."""
    if request.process != "lhe":
        raise ToolInputError.for_param(_TOOL, "lhe_path", request.path, f"is only read with process='lhe', not "
                                       f"process={request.process!r}. Set process='lhe' to shower the file, or "
                                       "drop lhe_path.")
    if request.path is None:
        raise ToolInputError.for_param(_TOOL, "lhe_path", None, "is required with process='lhe': name the Les "
                                       "Houches file (.lhe or .lhe.gz) to shower.")
    for param, value in cuts.items():
        if value is not None:
            raise ToolInputError.for_param(_TOOL, param, value, "does not apply with process='lhe': the hard "
                                           "process, its cuts and decays are fixed in the Les Houches file. Drop "
                                           f"{param}, or regenerate the file with the cut.")
    return request.path


def inspect_lhe(real: Path, given: str) -> LheInfo:
    """Read the init block and count the events (ToolInputError naming lhe_path if the file is not LHE)."""
    import pylhe

    from physagent.tools._runner import file_sha256
    from physagent.tools.data._generator_files import open_lhe

    try:
        with warnings.catch_warnings():  # pylhe warns on a parse error, then raises or counts −1: we say it
            warnings.simplefilter("ignore", RuntimeWarning)
            with open_lhe(real) as lhe:
                init = lhe.init
            n_events = int(pylhe.LHEFile.count_events(str(real)))
        if n_events < 0:
            raise ValueError("the XML of its events does not parse")
    except Exception as exc:  # pylhe raises XML, gzip and value errors alike for a file that is not LHE
        raise ToolInputError.for_param(_TOOL, "lhe_path", given, f"is not a readable Les Houches event file "
                                       f"({type(exc).__name__}: {exc}). Pass a .lhe or .lhe.gz file.") from exc
    if n_events < 1:
        raise ToolInputError.for_param(_TOOL, "lhe_path", given, "holds no <event> blocks. Pass a file with events.")
    beam = init.initInfo
    sqrt_s_gev = 2.0 * math.sqrt(float(beam.energyA) * float(beam.energyB))
    sigma = sum(float(proc.xSection) for proc in init.procInfo)
    return LheInfo(str(real), file_sha256(real), n_events, int(beam.weightingStrategy), sigma, sqrt_s_gev / 1000.0,
                   (int(beam.beamA), int(beam.beamB)))


def lhe_settings(request: LheRequest) -> list[str]:
    """Pythia settings for showering a file (the ``Beams:LHEF`` line is added by the caller, after checks)."""
    mpi, isr, fsr, hadronisation = (("on" if flag else "off") for flag in request.switches)
    return ["Beams:frameType = 4", f"PartonLevel:MPI = {mpi}", f"PartonLevel:ISR = {isr}",
            f"PartonLevel:FSR = {fsr}", f"HadronLevel:all = {hadronisation}", *request.settings]


def skip_settings(plan: list[tuple[int, int]]) -> list[list[str]]:
    """Per shard: skip the events the earlier shards shower."""
    offsets = [sum(n for n, _ in plan[:index]) for index in range(len(plan))]
    return [[f"Beams:nSkipLHEFatInit = {offset}"] for offset in offsets]


@contextmanager
def pythia_readable(real: Path) -> Iterator[Path]:
    """A path Pythia can read: Pythia cuts a setting's value at the first blank, so a path with blanks is
    reached through a link in a temporary folder (kept while the shards run)."""
    if not any(ch.isspace() for ch in str(real)):
        yield real
        return
    with tempfile.TemporaryDirectory(prefix="physagent-lhe-") as folder:
        link = Path(folder) / ("events.lhe.gz" if real.name.endswith(".gz") else "events.lhe")
        link.symlink_to(real)
        yield link


def weight_card(info: LheInfo) -> dict[str, Any]:
    """How to read the stored weights: cross-section weights in pb (strategy ±4) or unit weights."""
    return {"weight_unit": "pb" if abs(info.strategy) == 4 else "1"}


def warnings_for(request: LheRequest, info: LheInfo, n_events: int) -> list[str]:
    found = []
    if n_events < request.n_events:
        found.append(f"n_events={request.n_events} is more than the {info.n_events} events in "
                     f"{Path(info.source_path).name}: all {info.n_events} were showered.")
    if request.sqrt_s_tev != _DEFAULT_SQRT_S_TEV and not math.isclose(request.sqrt_s_tev, info.sqrt_s_tev):
        found.append(f"sqrt_s_tev={request.sqrt_s_tev:g} was not used: the Les Houches file's beams give √s = "
                     f"{info.sqrt_s_tev:g} TeV.")
    return found
