r"""``generate_events``: proton-proton collisions with Pythia8, as awkward arrays in Parquet.

Named processes with physics parameters (√s in TeV, p̂T and m̂ windows in GeV, resonance masses in
GeV, decay modes) or raw Pythia settings (``custom``), validated by Pythia itself; or ``process='lhe'``:
parton-level events of a Les Houches file (``lhe_path``, e.g. from MadGraph) showered and hadronised
(:mod:`tools.simulate._lhe`). Output: one ``events`` artifact, ``events.parquet`` with per event

- ``particles``: final state (``status > 0``): ``px, py, pz, e`` [GeV], ``pid``, ``charge`` [e]
- ``partons``: hard process incl. resonance decays (``21 ≤ |status| ≤ 29``): momenta, ``pid``, ``status``,
  ``mother1``, ``mother2`` (index inside ``partons``, −1 none; see :mod:`tools.simulate._pythia`)
- ``weight``, ``pt_hat_gev``, ``m_hat_gev``

and ``card.json`` with the settings, seeds, the generator cross-section in pb and the p̂T and m̂ windows
Pythia generated in (``pt_hat_min_gev``, ``pt_hat_max_gev``, ``m_hat_min_gev``, ``m_hat_max_gev``; None: no cut).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._cluster import executor_record
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolResult, tool
from physagent.tools._workers import worker_count
from physagent.tools.simulate import _lhe, _pythia

__all__ = ["EventSample", "generate_events", "process_settings"]

Process = Literal[
    "ttbar", "qcd_dijet", "w_jets", "z_jets", "drell_yan_mumu", "higgs_gammagamma", "wprime_to_xy", "custom", "lhe"
]
Decay = Literal["default", "inclusive", "hadronic", "semileptonic", "leptonic", "invisible"]

_PROCESS_SETTINGS: dict[str, list[str]] = {
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
    "qcd_dijet": ["HardQCD:all = on"],
    "w_jets": ["WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on"],
    "z_jets": [
        "WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on", "WeakZ0:gmZmode = 2",
    ],
    "drell_yan_mumu": ["WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 13"],
    "higgs_gammagamma": ["HiggsSM:gg2H = on", "25:onMode = off", "25:onIfMatch = 22 22"],
    "wprime_to_xy": ["NewGaugeBoson:ffbar2Wprime = on"],
    "custom": [],
    "lhe": [],
}

_W_DECAYS = {
    "inclusive": [],
    "hadronic": ["24:onMode = off", "24:onIfAny = 1 2 3 4 5"],
    "leptonic": ["24:onMode = off", "24:onIfAny = 11 13 15"],
    "semileptonic": ["24:onMode = off", "24:onPosIfAny = 1 2 3 4 5", "24:onNegIfAny = 11 13 15"],
}
_Z_DECAYS = {
    "inclusive": [],
    "hadronic": ["23:onMode = off", "23:onIfAny = 1 2 3 4 5"],
    "leptonic": ["23:onMode = off", "23:onIfAny = 11 13"],
    "invisible": ["23:onMode = off", "23:onIfAny = 12 14 16"],
}
# decay choices per process, the first being what "default" means
_DECAYS: dict[str, dict[str, list[str]]] = {
    "ttbar": _W_DECAYS,
    "w_jets": {k: v for k, v in _W_DECAYS.items() if k != "semileptonic"},
    "z_jets": {"invisible": _Z_DECAYS["invisible"]} | _Z_DECAYS,
}
# 2 → 2 processes with a final-state jet diverge at low p̂T: a cut is required
_NEEDS_PT_HAT = {"qcd_dijet": 20.0, "w_jets": 20.0, "z_jets": 20.0}
_DEFAULT_M_HAT = {"drell_yan_mumu": (60.0, 120.0)}
# lowest √s in GeV each process can be made at (2 m_t for tt̄, m_H, m_W, m_Z), before any p̂T cut
_THRESHOLD_GEV = {"ttbar": 345.0, "higgs_gammagamma": 125.1, "w_jets": 80.4, "z_jets": 91.2}
# the parameter behind each setting we generate, by the setting's key
_SETTING_PARAMS = {
    "Beams:eCM": "sqrt_s_tev", "PhaseSpace:pTHatMin": "pt_hat_min_gev", "PhaseSpace:pTHatMax": "pt_hat_max_gev",
    "PhaseSpace:mHatMin": "m_hat_min_gev", "PhaseSpace:mHatMax": "m_hat_max_gev", "34:": "m_wprime_gev",
    "9000001:": "m_x_gev", "9000002:": "m_y_gev", "PartonLevel:MPI": "mpi", "PartonLevel:ISR": "isr",
    "PartonLevel:FSR": "fsr", "HadronLevel:all": "hadronisation",
}
# the card fields of the hard-process window edges, and the (lower-cased) Pythia setting behind each
_WINDOW_FIELDS = ("pt_hat_min_gev", "pt_hat_max_gev", "m_hat_min_gev", "m_hat_max_gev")
_WINDOW_SETTINGS = {key.lower(): param for key, param in _SETTING_PARAMS.items() if param in _WINDOW_FIELDS}
EVENTS_PER_SHARD = 2_500
# how people name the processes; an agent maps a request's words onto the enum with these
_PROCESS_PHRASES = {
    "ttbar": "ttbar", "tt̄": "ttbar", "top pair": "ttbar", "top quark pair": "ttbar", "top quark": "ttbar",
    "top-quark": "ttbar", "top events": "ttbar", "top jets": "ttbar",
    "qcd dijet": "qcd_dijet", "dijet": "qcd_dijet", "multijet": "qcd_dijet", "qcd jets": "qcd_dijet",
    "w+jets": "w_jets", "w + jets": "w_jets", "w plus jets": "w_jets", "w+jet": "w_jets",
    "z+jets": "z_jets", "z + jets": "z_jets", "z plus jets": "z_jets", "z+jet": "z_jets",
    "drell-yan": "drell_yan_mumu", "drell yan": "drell_yan_mumu", "z to mumu": "drell_yan_mumu",
    "z to mu mu": "drell_yan_mumu", "z→μμ": "drell_yan_mumu", "z->mumu": "drell_yan_mumu",
    "z -> mu mu": "drell_yan_mumu", "z to muons": "drell_yan_mumu", "z→mumu": "drell_yan_mumu",
    "dimuon": "drell_yan_mumu", "muon pair": "drell_yan_mumu",
    "higgs": "higgs_gammagamma", "diphoton": "higgs_gammagamma", "h→γγ": "higgs_gammagamma",
    "w'": "wprime_to_xy", "w′": "wprime_to_xy", "wprime": "wprime_to_xy", "w prime": "wprime_to_xy",
    "lhe file": "lhe", "les houches": "lhe", ".lhe": "lhe", "madgraph": "lhe", "lhef": "lhe",
}

_MPI_OFF_PHRASES = dict.fromkeys((
    "mpi off", "without mpi", "no mpi", "mpi switched off", "mpi turned off", "mpi disabled",
    "no underlying event", "without underlying event", "multi-parton interactions off",
    "multi-parton interactions switched off", "multiparton interactions off", "no multi-parton interactions",
    "without multi-parton interactions", "multi-parton interactions turned off"), False)
# "boosted tops" without a number: the usual top-tagging slice, top decay products in one R = 1.0 jet
_BOOSTED_PHRASES = dict.fromkeys(("boosted top", "boosted tops", "boosted ttbar", "boosted tt̄", "boosted top quark",
                                  "boosted top-quark"), 400.0)
# words for "a small sample" a physicist writes instead of a number
_COUNT_PHRASES = {"a few hundred": 300, "a couple of hundred": 200, "a couple hundred": 200,
                  "a few thousand": 3000, "a couple of thousand": 2000}


class EventSample(ToolResult):
    """Generated events and the generator's cross-section."""

    events: Artifact = Field(description="Parquet artifact of the generated events (kind 'events').")
    n_events: int = Field(description="Number of events generated.")
    sigma_pb: float = Field(description="Pythia's estimated cross-section of the process, in pb.")
    sigma_err_pb: float = Field(description="Statistical uncertainty of sigma_pb, in pb.")
    mean_particles: float = Field(description="Mean number of final-state particles per event.")
    shards: int = Field(description="Seed shards the sample was generated in.")
    warnings: list[str] = Field(default_factory=list, description="What was adjusted, e.g. n_events capped at "
                                "the events of the Les Houches file.")


@tool(category="simulate", version="2", file_params=("lhe_path",))
def generate_events(
    process: Annotated[Process, Field(
        description="Named Pythia8 process, or 'custom' for raw settings.",
        json_schema_extra={"x-phrases": _PROCESS_PHRASES},
    )],
    n_events: Annotated[int, Field(ge=1, le=10_000_000, description="Events to generate.",
                                   json_schema_extra={"x-phrases": _COUNT_PHRASES, "x-sample-size": True})] = 10_000,
    sqrt_s_tev: Annotated[float, Field(gt=0, le=100, description="Centre-of-mass energy in TeV.")] = 13.6,
    pt_hat_min_gev: Annotated[
        float | None, Field(ge=0, description="Minimum p̂T of the hard 2→2 scattering in GeV (None: "
                            "process default, 20 GeV for dijet/W+jet/Z+jet, else no cut).",
                            json_schema_extra={"x-phrases": _BOOSTED_PHRASES})
    ] = None,
    pt_hat_max_gev: Annotated[float | None, Field(gt=0, description="Maximum p̂T in GeV (None: no cut).")] = None,
    m_hat_min_gev: Annotated[
        float | None, Field(ge=0, description="Minimum invariant mass m̂ of the hard process in GeV "
                            "(None: process default, 60 GeV for drell_yan_mumu).")
    ] = None,
    m_hat_max_gev: Annotated[
        float | None, Field(gt=0, description="Maximum m̂ in GeV (None: process default, 120 GeV for "
                            "drell_yan_mumu, else no cut).")
    ] = None,
    decay: Annotated[
        Decay, Field(description="Boson decays: ttbar/w_jets take inclusive, hadronic, leptonic (ttbar also "
                     "semileptonic); z_jets takes invisible (Z→νν, the default), hadronic, leptonic, "
                     "inclusive. 'default' = inclusive, or invisible for z_jets.")
    ] = "default",
    m_wprime_gev: Annotated[float, Field(gt=0, description="wprime_to_xy: W′ mass in GeV.")] = 3500.0,
    m_x_gev: Annotated[float, Field(gt=0, description="wprime_to_xy: X mass in GeV (X → qq̄).")] = 500.0,
    m_y_gev: Annotated[float, Field(gt=0, description="wprime_to_xy: Y mass in GeV (Y → qq̄′).")] = 100.0,
    mpi: Annotated[bool, Field(
        description="Multi-parton interactions (underlying event); off is ~6× faster.",
        json_schema_extra={"x-phrases": _MPI_OFF_PHRASES},
    )] = True,
    isr: Annotated[bool, Field(description="Initial-state radiation.")] = True,
    fsr: Annotated[bool, Field(description="Final-state radiation.")] = True,
    hadronisation: Annotated[bool, Field(description="Hadronisation (off: partons in the final state).")] = True,
    settings: Annotated[
        list[str], Field(json_schema_extra={"x-derived": True},
                         description="Extra raw Pythia settings, e.g. ['Tune:pp = 14']; required for "
                                     "'custom', which starts from no process at all.")
    ] = [],  # noqa: B006 — pydantic copies defaults; a list reads best in the schema
    seed: Annotated[int, Field(ge=0, description="Random seed; same seed and shards, same events.")] = 0,
    shards: Annotated[
        int | None, Field(ge=1, le=1024, description="Seed shards run in parallel over the CPU cores "
                          f"(None: one per {EVENTS_PER_SHARD} events). Changes the events, unlike the "
                          "core count.")
    ] = None,
    lhe_path: Annotated[
        str | None, Field(description="Les Houches event file (.lhe or .lhe.gz, e.g. from MadGraph) to shower "
                          "and hadronise, with process='lhe'; in an allowed folder, like read_root's path. "
                          "√s and the cross-section come from the file.")
    ] = None,
    *,
    ctx: ToolContext,
) -> EventSample:
    """Generate proton-proton collision events with Pythia8.

    Returns a Parquet artifact of final-state particles (px, py, pz, e in GeV, pid, charge), the
    hard-process partons (with mother indices), and the generator cross-section in pb. With
    process='lhe', the parton-level events of the Les Houches file lhe_path are showered and hadronised.
    """
    if process == "lhe" or lhe_path is not None:
        request = _lhe.LheRequest(process, lhe_path, n_events, seed, shards, (mpi, isr, fsr, hadronisation),
                                  settings, sqrt_s_tev)
        cuts = {"pt_hat_min_gev": pt_hat_min_gev, "pt_hat_max_gev": pt_hat_max_gev, "m_hat_min_gev": m_hat_min_gev,
                "m_hat_max_gev": m_hat_max_gev, "decay": None if decay == "default" else decay}
        path = _lhe.check_lhe_arguments(request, cuts)
        return _generate_from_lhe(ctx, request, path)
    all_settings = process_settings(
        process, sqrt_s_tev, pt_hat_min_gev, pt_hat_max_gev, m_hat_min_gev, m_hat_max_gev, decay,
        (m_wprime_gev, m_x_gev, m_y_gev), (mpi, isr, fsr, hadronisation), settings,
    )
    values = {"process": process, "sqrt_s_tev": sqrt_s_tev, "pt_hat_min_gev": pt_hat_min_gev,
              "pt_hat_max_gev": pt_hat_max_gev, "m_hat_min_gev": m_hat_min_gev, "m_hat_max_gev": m_hat_max_gev,
              "m_wprime_gev": m_wprime_gev, "m_x_gev": m_x_gev, "m_y_gev": m_y_gev, "mpi": mpi, "isr": isr,
              "fsr": fsr, "hadronisation": hadronisation}
    _check_reach(values)
    _check_settings(process, all_settings, values, settings)
    if shards is not None and shards > n_events:
        raise ToolInputError.for_param(
            "generate_events", "shards", shards, f"is more than n_events={n_events}: each shard needs at least "
            "one event. Use at most n_events shards, or leave shards unset (one per "
            f"{EVENTS_PER_SHARD} events).")
    n_shards = shards or max(1, math.ceil(n_events / EVENTS_PER_SHARD))
    plan = _pythia.shard_plan(n_events, n_shards, seed)
    pending = ctx.new_artifact("events")
    results = _run_shards(ctx, process, all_settings, plan, n_events)
    return _write_sample(pending, results, process, all_settings, plan, seed, sqrt_s_tev, mpi,
                         _window_card(process, values, settings))


def process_settings(
    process: str,
    sqrt_s_tev: float,
    pt_hat_min_gev: float | None,
    pt_hat_max_gev: float | None,
    m_hat_min_gev: float | None,
    m_hat_max_gev: float | None,
    decay: str,
    wprime_masses_gev: tuple[float, float, float],
    switches: tuple[bool, bool, bool, bool],
    extra: list[str],
) -> list[str]:
    """The full list of Pythia settings for a named process (seed settings excluded)."""
    pt_min, _, m_min, m_max = _hard_window(process, pt_hat_min_gev, pt_hat_max_gev, m_hat_min_gev, m_hat_max_gev)
    _check_windows(pt_min, pt_hat_max_gev, m_min, m_max)
    mpi, isr, fsr, hadronisation = switches
    lines = [f"Beams:eCM = {sqrt_s_tev * 1000.0:g}", *_PROCESS_SETTINGS[process]]
    lines += _decay_settings(process, decay)
    if process == "wprime_to_xy":
        lines += _wprime_settings(*wprime_masses_gev)
    lines.append(f"PhaseSpace:pTHatMin = {pt_min:g}")
    if pt_hat_max_gev is not None:
        lines.append(f"PhaseSpace:pTHatMax = {pt_hat_max_gev:g}")
    if m_min is not None:
        lines.append(f"PhaseSpace:mHatMin = {m_min:g}")
    if m_max is not None:
        lines.append(f"PhaseSpace:mHatMax = {m_max:g}")
    lines += [f"PartonLevel:MPI = {_on(mpi)}", f"PartonLevel:ISR = {_on(isr)}",
              f"PartonLevel:FSR = {_on(fsr)}", f"HadronLevel:all = {_on(hadronisation)}"]
    return lines + list(extra)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _hard_window(
    process: str, pt_min: float | None, pt_max: float | None, m_min: float | None, m_max: float | None,
) -> tuple[float, float | None, float | None, float | None]:
    """(p̂T min, p̂T max, m̂ min, m̂ max) in GeV: the arguments, else the process's default (None: no cut)."""
    m_default = _DEFAULT_M_HAT.get(process, (None, None))
    return (pt_min if pt_min is not None else _NEEDS_PT_HAT.get(process, 0.0), pt_max,
            m_min if m_min is not None else m_default[0], m_max if m_max is not None else m_default[1])


def _window_card(process: str, values: dict[str, Any], extra: list[str]) -> dict[str, float | None]:
    """The window edges Pythia generates in, as card fields, so readers need not parse the settings: the
    arguments or process defaults, overridden by raw ``settings`` lines for an edge (the last wins, as in Pythia)."""
    card = dict(zip(_WINDOW_FIELDS, _hard_window(process, *(values[f] for f in _WINDOW_FIELDS)), strict=True))
    for line in extra:
        key, _, value = line.strip().replace("=", " ", 1).partition(" ")
        number = _number(value)
        if key.lower() in _WINDOW_SETTINGS and number is not None:
            card[_WINDOW_SETTINGS[key.lower()]] = number
    for low, high in (("pt_hat_min_gev", "pt_hat_max_gev"), ("m_hat_min_gev", "m_hat_max_gev")):
        if (card[high] or 0.0) <= (card[low] or 0.0):
            card[high] = None  # Pythia cuts at a maximum only above the minimum (its default −1: no cut)
    return card


def _number(text: str) -> float | None:
    try:
        return float(text.split(maxsplit=1)[0])  # Pythia reads the first word of the value
    except (IndexError, ValueError):
        return None


def _check_windows(pt_min: float, pt_max: float | None, m_min: float | None, m_max: float | None) -> None:
    if pt_max is not None and pt_max <= pt_min:
        raise ToolInputError.for_param(
            "generate_events", "pt_hat_max_gev", pt_max,
            f"must be larger than pt_hat_min_gev={pt_min:g}. Swap or widen the p̂T window.",
        )
    if m_max is not None and m_min is not None and m_max <= m_min:
        raise ToolInputError.for_param(
            "generate_events", "m_hat_max_gev", m_max,
            f"must be larger than m_hat_min_gev={m_min:g}. Swap or widen the m̂ window.",
        )


def _decay_settings(process: str, decay: str) -> list[str]:
    choices = _DECAYS.get(process)
    if decay == "default":
        return next(iter(choices.values())) if choices else []
    if choices is None or decay not in choices:
        allowed = ", ".join(["default", *(choices or {})])
        raise ToolInputError.for_param(
            "generate_events", "decay", decay, f"is not available for process {process!r}. Allowed: {allowed}."
        )
    return choices[decay]


def _wprime_settings(m_wprime: float, m_x: float, m_y: float) -> list[str]:
    """W′ → X Y with X → d d̄ (neutral) and Y⁺ → u d̄, narrow and kept near their masses.

    X and Y are new scalars (PDG ids 9000001/9000002), as in the LHC Olympics 2020 R&D sample.
    ``meMode = 100`` makes Pythia accept decays into light quarks; mass windows of ±20% stop the
    off-shell tail of the heavy W′ from dominating the sample.
    """
    if m_x + m_y >= m_wprime:
        raise ToolInputError.for_param(
            "generate_events", "m_wprime_gev", m_wprime,
            f"must exceed m_x_gev + m_y_gev = {m_x + m_y:g} for W′ → XY to be open.",
        )
    return [
        f"34:m0 = {m_wprime:g}", f"34:mMin = {0.8 * m_wprime:g}", f"34:mMax = {1.2 * m_wprime:g}",
        "34:onMode = off", "34:addChannel = 1 1.0 100 9000001 9000002",
        f"9000001:new = X void 1 0 0 {m_x:g} 1.0 {0.8 * m_x:g} {1.2 * m_x:g} 0",
        "9000001:addChannel = 1 1.0 100 1 -1", "9000001:mayDecay = on",
        f"9000002:new = Y+ Y- 1 3 0 {m_y:g} 1.0 {0.8 * m_y:g} {1.2 * m_y:g} 0",
        "9000002:addChannel = 1 1.0 100 2 -1", "9000002:mayDecay = on",
    ]


def _check_reach(values: dict[str, Any]) -> None:
    """Refuse, by parameter name, hard-process cuts and masses that √s cannot reach (Pythia would only
    fail to initialise, naming no parameter)."""
    sqrt_s_gev = 1000.0 * values["sqrt_s_tev"]
    process, pt_min, m_min = values["process"], values["pt_hat_min_gev"], values["m_hat_min_gev"]
    at = f"at sqrt_s_tev={values['sqrt_s_tev']:g}"
    if pt_min is not None and pt_min >= sqrt_s_gev / 2:
        raise ToolInputError.for_param("generate_events", "pt_hat_min_gev", pt_min,
                                       f"must be below √s/2 = {sqrt_s_gev / 2:g} GeV {at}. Lower the cut.")
    if m_min is not None and m_min >= sqrt_s_gev:
        raise ToolInputError.for_param("generate_events", "m_hat_min_gev", m_min,
                                       f"must be below √s = {sqrt_s_gev:g} GeV {at}. Lower the cut.")
    if process == "wprime_to_xy" and 0.8 * values["m_wprime_gev"] >= sqrt_s_gev:
        raise ToolInputError.for_param(
            "generate_events", "m_wprime_gev", values["m_wprime_gev"],
            f"must be below {sqrt_s_gev / 0.8:g} GeV {at}: its mass window starts at 0.8·m_W′, above √s.")
    threshold = _THRESHOLD_GEV.get(process, 0.0) + (pt_min or _NEEDS_PT_HAT.get(process, 0.0))
    if sqrt_s_gev <= threshold:
        raise ToolInputError.for_param(
            "generate_events", "sqrt_s_tev", values["sqrt_s_tev"],
            f"is below what process {process!r} needs (√s > {threshold:g} GeV). Raise the collision energy.")


def _param_of(line: str, extra: list[str]) -> str:
    """The generate_events parameter a generated Pythia setting comes from."""
    if line in extra:
        return "settings"
    return next((param for key, param in _SETTING_PARAMS.items() if line.startswith(key)), "process")


def _check_settings(process: str, lines: list[str], values: dict[str, Any], extra: list[str]) -> None:
    _check_no_host_files(lines)
    rejected = _pythia.invalid_settings(lines)
    if rejected:
        line, why = rejected[0]
        param = _param_of(line, extra)
        if param != "settings":  # a setting we wrote from a parameter: name the parameter, not the setting
            raise ToolInputError.for_param(
                "generate_events", param, values.get(param), f"is not accepted by Pythia (it becomes "
                f"{line!r}: {why}). Choose another value.")
        raise ToolInputError.for_param(
            "generate_events", "settings", line, f"was rejected by Pythia: {why}. "
            "See https://pythia.org/latest-manual/ for valid settings.",
        )
    if process == "custom":
        failure = _pythia.try_init(lines)
        if failure is not None:
            raise ToolInputError.for_param(
                "generate_events", "settings", lines[-1] if lines else [],
                f"do not define a process Pythia can initialise ({failure}). "
                "Switch on a process, e.g. 'HardQCD:all = on'.",
            )


# Pythia settings that read, write (MPI init files, reuseInit) or dlopen (Vincia plugins) a host file: a call must
# not reach the host's files this way, whatever the data tools' folders allow
_HOST_FILE_KEY = re.compile(r"file|lhef|plugin|xmlpath|reuseinit", re.IGNORECASE)


def _check_no_host_files(lines: list[str]) -> None:
    for line in lines:
        key, _, value = line.strip().replace("=", " ", 1).partition(" ")
        pdf_grid = "pdf" in key.lower() and ("/" in value or "lhagrid" in value.lower())
        if _HOST_FILE_KEY.search(key) or pdf_grid:
            raise ToolInputError.for_param(
                "generate_events", "settings", line, "names a file Pythia would read, write or load on the host; "
                "settings naming files (LHEF, SLHA, init files, plugins, PDF grids) are not accepted. "
                "Use settings without files.",
            )


def _run_shards(
    ctx: ToolContext, process: str, settings: list[str], plan: list[tuple[int, int]], n_events: int,
    per_shard: list[list[str]] | None = None,
) -> list[_pythia.ShardResult]:
    workers = worker_count()
    results = []
    with ctx.progress(f"Pythia8 {process}", total=n_events, unit="events") as bar:
        try:
            for result in _pythia.generate(settings, plan, workers, bar.advance, per_shard=per_shard,
                                           keep_dir=ctx.workspace.root):
                results.append(result)
        except RuntimeError as exc:
            raise ToolRuntimeError(f"generate_events: Pythia failed for process {process!r}: {exc}") from exc
    return results


def _generate_from_lhe(ctx: ToolContext, request: _lhe.LheRequest, path: str) -> EventSample:
    """Shower the Les Houches file ``path`` (the checks and settings live in :mod:`._lhe`)."""
    real = ctx.input_file("lhe_path", path)
    info = _lhe.inspect_lhe(real, path)
    base = _lhe.lhe_settings(request)
    _check_no_host_files(base)
    rejected = _pythia.invalid_settings(base)
    if rejected:
        raise ToolInputError.for_param("generate_events", "settings", rejected[0][0],
                                       f"was rejected by Pythia: {rejected[0][1]}. See https://pythia.org/"
                                       "latest-manual/ for valid settings.")
    n_events = min(request.n_events, info.n_events)
    if request.shards is not None and request.shards > n_events:
        raise ToolInputError.for_param("generate_events", "shards", request.shards, f"is more than the {n_events} "
                                       "events to shower: each shard needs one. Use fewer shards.")
    plan = _pythia.shard_plan(n_events, request.shards or max(1, math.ceil(n_events / EVENTS_PER_SHARD)),
                              request.seed)
    with _lhe.pythia_readable(real) as pythia_path:
        settings = [*base, f"Beams:LHEF = {pythia_path}"]
        failure = _pythia.try_init(settings)
        if failure is not None:
            raise ToolInputError.for_param("generate_events", "lhe_path", path,
                                           f"could not be read by Pythia ({failure}). Check that it is a Les "
                                           "Houches event file.")
        pending = ctx.new_artifact("events")
        results = _run_shards(ctx, "lhe", settings, plan, n_events, _lhe.skip_settings(plan))
    # Pythia's p̂T/m̂ windows do not cut Les Houches events (the file's generator did): the card says none
    card = {"lhe": info.card(), "source_path": str(real)} | _lhe.weight_card(info) | dict.fromkeys(_WINDOW_FIELDS)
    warnings = _lhe.warnings_for(request, info, n_events)
    # the card names the user's file, not the temporary link a path with blanks is read through
    return _write_sample(pending, results, "lhe", [*base, f"Beams:LHEF = {real}"], plan, request.seed,
                         info.sqrt_s_tev, request.switches[0], card, warnings)


def _execution_record(results: list[_pythia.ShardResult], plan: list[tuple[int, int]]) -> dict[str, Any]:
    """Where each shard ran: the executor, and per shard its worker, attempts and whether a failed run kept it."""
    shards = [{"index": r.index, "pythia_seed": seed, "worker": r.worker, "attempts": r.attempts, "kept": r.kept}
              for r, (_, seed) in zip(results, plan, strict=True)]
    return executor_record() | {"shards": shards}


def _write_sample(
    pending, results, process, settings, plan, seed, sqrt_s_tev, mpi, extra_card=None, warnings=None,
) -> EventSample:
    import awkward as ak

    from physagent.tools._io import write_json, write_parquet_row_groups

    write_parquet_row_groups((r.events for r in results), pending.directory / "events.parquet")
    n_accepted = sum(r.n_accepted for r in results)
    sigma = sum(r.sigma_pb * r.n_accepted for r in results) / n_accepted
    sigma_err = math.sqrt(sum((r.sigma_err_pb * r.n_accepted) ** 2 for r in results)) / n_accepted
    mean_particles = sum(float(ak.sum(ak.num(r.events.particles))) for r in results) / n_accepted
    card = {
        "process": process, "n_events": n_accepted, "sqrt_s_tev": sqrt_s_tev, "seed": seed,
        "shards": [{"n_events": n, "pythia_seed": s} for n, s in plan], "pythia_settings": settings,
        "sigma_pb": sigma, "sigma_err_pb": sigma_err, "n_failed": sum(r.n_failed for r in results),
        "units": {"momenta": "GeV", "cross_section": "pb"},
    } | (extra_card or {})
    write_json(card, pending.directory / "card.json")
    # where and how each shard ran is provenance, not content: in the artifact's record, not in card.json,
    # so the files (and their hash) are the same on a fork pool, a LocalCluster and a batch cluster
    metadata = card | {"execution": _execution_record(results, plan)}
    summary = (
        f"{n_accepted:,} {process} events at sqrt(s) = {sqrt_s_tev:g} TeV (MPI {_on(mpi)}), "
        f"sigma = {sigma:.4g} ± {sigma_err:.2g} pb, {mean_particles:.0f} final-state particles/event"
    )
    artifact = pending.finish("events.parquet", summary, metadata)
    return EventSample(
        events=artifact, n_events=n_accepted, sigma_pb=sigma, sigma_err_pb=sigma_err,
        mean_particles=mean_particles, shards=len(plan), warnings=warnings or [],
    )
