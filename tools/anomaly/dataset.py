r"""``make_anomaly_dataset``: an LHC-Olympics-style resonant anomaly search dataset, simulated or imported.

Simulated: QCD dijets (Pythia8 ``qcd_dijet``, p̂T > ``pt_hat_min_gev``) as background and
W′ → X(→ qq̄) Y(→ qq̄′) (``wprime_to_xy``; 3.5 TeV, 500 GeV, 100 GeV by default) as signal, generated with the
cores of ``generate_events`` and clustered with the core of ``cluster_jets`` (:mod:`tools.anomaly._dijets`),
selected as the LHC Olympics 2020 R&D sample (arXiv:2101.08320): anti-kT R = 1.0, |η| < 2.5, leading jet
pT > 1.2 TeV. Imported: a ``table`` artifact (``features_table``) with the features and a truth ``label``
— the contract's columns, or the LHCO R&D feature file's ``pxj1 … tau3j2`` — to which the same pT/η
selection is applied.

Both pools keep the events inside the sidebands' outer edges, then :func:`tools.anomaly._injection.split_and_inject`
makes the observed data (background + signal at S/B = N_signal/N_background), the reference background and
the signal-region test set. Output: an ``anomaly_dataset`` artifact (:mod:`tools.anomaly._search_data`).

The background p̂T cut defaults to 5/6 of the leading-jet cut (1 TeV for 1.2 TeV), where about 40% of
the events pass. Against a p̂T > 850 GeV sample (13 TeV, MPI off, ±1%) it misses ~5% of the selected events
with m_jj > 2.8 TeV, evenly in m_jj (5.6% above 2.8 TeV, 5.4% above 3 TeV): the lost events sit at a
leading-jet pT just above the cut (the first 50 GeV ~15% low), and the m_jj spectrum the sidebands see
falls smoothly. ``pt_hat_min_gev=900`` halves the loss at 1.8× the CPU time per selected event.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._cluster import executor_record
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.anomaly._bump import MIN_SIDEBAND_EVENTS
from physagent.tools.anomaly._dijets import LHCO_COLUMNS, DijetSample, Selection, generate_dijets, lhco_features, passes
from physagent.tools.anomaly._injection import InjectionError, split_and_inject
from physagent.tools.anomaly._search_data import COLUMNS, MASS, TRUTH, Table, Windows, write_search_data

__all__ = ["AnomalyDataset", "make_anomaly_dataset"]

TableRef = Annotated[str, Accepts(("table",)), Field(pattern=ARTIFACT_ID_PATTERN)]
_TOOL = "make_anomaly_dataset"
# default windows as fractions of m_W′: 3.3–3.7 TeV and 2.8–5.0 TeV at m_W′ = 3.5 TeV (the LHCO R&D choice)
_SR_FRACTIONS = (1.0 - 0.2 / 3.5, 1.0 + 0.2 / 3.5)
_SB_FRACTIONS = (0.8, 5.0 / 3.5)
_PT_HAT_FRACTION = 5.0 / 6.0  # of the leading-jet cut; see the module docstring


class AnomalyDataset(ToolResult):
    """An anomaly-search dataset: observed data with injected signal, reference background, labelled test set."""

    dataset: Artifact = Field(description="The anomaly_dataset artifact: data.parquet, reference_background.parquet, "
                                          "test.parquet and card.json.")
    source: str = Field(description="'pythia' (simulated here) or 'features_table' (imported).")
    n_data: int = Field(description="Events in the observed data (background plus injected signal).")
    n_signal_injected: int = Field(description="Signal events injected into the data (truth label 1).")
    n_background_data: int = Field(description="Background events in the data.")
    n_reference: int = Field(description="Events of the independent reference background.")
    n_test_signal: int = Field(description="Held-out signal events in the test set (signal region only).")
    n_test_background: int = Field(description="Held-out background events in the test set (signal region only).")
    s_over_b: float = Field(description="Injected N_signal/N_background over the whole data.")
    s_over_b_signal_region: float = Field(description="N_signal/N_background of the data in the signal region.")
    significance_signal_region: float = Field(
        description="S/√B of the data in the signal region: the naive significance of the injected bump.")
    signal_region_gev: list[float] = Field(description="The m_jj signal region [low, high) in GeV.")
    sidebands_gev: list[float] = Field(description="The sidebands' outer edges [low, high) in m_jj, in GeV.")
    background_efficiency: float = Field(
        description="Fraction of background events passing the selection and inside the sidebands' outer edges.")
    signal_efficiency: float = Field(
        description="Fraction of signal events passing the selection and inside the sidebands' outer edges.")
    events_generated: int = Field(description="Pythia events generated (0 for a features_table).")
    notes: list[str] = Field(description="Anything the user should know: weak settings, ignored parameters.")


@tool(category="anomaly", version="1")
def make_anomaly_dataset(
    n_background_events: Annotated[int, Field(
        ge=100, le=10_000_000, description="QCD dijet events to generate (before the selection; about 40% pass "
                                           "and about half of those fall inside the sidebands).",
        json_schema_extra={"x-names": ["qcd", "background events", "dijet events"]})] = 100_000,
    n_signal_events: Annotated[int, Field(
        ge=10, le=1_000_000, description="W′ signal events to generate, for injection and the test set.",
        json_schema_extra={"x-names": ["w'", "w′", "wprime", "signal events"]})] = 10_000,
    s_over_b: Annotated[float, Field(
        ge=0, le=1, description="Injected signal over background, N_signal/N_background in the whole observed "
                                "data (0: background only).",
        json_schema_extra={"x-names": ["s/b", "signal-to-background", "signal over background"]})] = 0.005,
    m_wprime_gev: Annotated[float, Field(gt=0, description="W′ mass in GeV (the m_jj resonance).")] = 3500.0,
    m_x_gev: Annotated[float, Field(gt=0, description="X mass in GeV (X → qq̄, the heavier jet).")] = 500.0,
    m_y_gev: Annotated[float, Field(gt=0, description="Y mass in GeV (Y → qq̄′, the lighter jet).")] = 100.0,
    signal_region_min_gev: Annotated[float | None, Field(
        gt=0, description="Lower edge of the m_jj signal region in GeV (None: m_W′·(1 − 0.2/3.5), 3300 at "
                          "3.5 TeV).")] = None,
    signal_region_max_gev: Annotated[float | None, Field(
        gt=0, description="Upper edge of the m_jj signal region in GeV (None: m_W′·(1 + 0.2/3.5), 3700 at "
                          "3.5 TeV).")] = None,
    sideband_min_gev: Annotated[float | None, Field(
        gt=0, description="Lower edge of the m_jj sidebands in GeV (None: 0.8·m_W′, 2800 at 3.5 TeV).")] = None,
    sideband_max_gev: Annotated[float | None, Field(
        gt=0, description="Upper edge of the m_jj sidebands in GeV (None: m_W′/0.7, 5000 at 3.5 TeV).")] = None,
    pt_min_gev: Annotated[float, Field(ge=0, description="Leading-jet pT cut in GeV (the R&D trigger).")] = 1200.0,
    eta_max: Annotated[float, Field(gt=0, le=5, description="Maximum |η| of the two leading jets.")] = 2.5,
    radius: Annotated[float, Field(gt=0, le=2.0, description="Anti-kT jet radius R.")] = 1.0,
    pt_hat_min_gev: Annotated[float | None, Field(
        ge=0, description="QCD p̂T cut in GeV (None: 5/6 of pt_min_gev, 1000 at 1.2 TeV: efficient, and "
                          "no sculpting of the selected m_jj spectrum).")] = None,
    sqrt_s_tev: Annotated[float, Field(gt=0, le=100, description="Centre-of-mass energy in TeV.")] = 13.0,
    mpi: Annotated[bool, Field(description="Multi-parton interactions, the underlying event (off by default: "
                                           "~3× faster; on raises the R = 1.0 jet masses, as in the LHCO R&D "
                                           "sample).")] = False,
    features_table: Annotated[TableRef | None, Field(
        description="Id of a table artifact (e.g. from read_table) with the features and a truth 'label' "
                    "(1 signal, 0 background) to use instead of generating: columns mjj_gev, mj1_gev, "
                    "delta_mj_gev, tau21_j1, tau21_j2, pt_j1_gev, pt_j2_gev, eta_j1, eta_j2, or the LHCO R&D "
                    "columns pxj1 … tau3j2. The generation parameters are then ignored.")] = None,
    seed: Annotated[int, Field(ge=0, description="Random seed for generation, the split and the injection.")] = 0,
    *,
    ctx: ToolContext,
) -> AnomalyDataset:
    """Build an LHC-Olympics-style anomaly-search dataset: QCD dijets with W′ → XY signal injected at a chosen S/B.

    Generates (or imports) dijet events, selects them like the LHCO R&D sample, computes m_jj, the jet
    masses and τ21, and splits them into observed data, a reference background and a labelled test set.
    """
    masses = (m_wprime_gev, m_x_gev, m_y_gev)
    windows = _windows(m_wprime_gev, (signal_region_min_gev, signal_region_max_gev),
                       (sideband_min_gev, sideband_max_gev))
    selection = Selection(radius, pt_min_gev, eta_max)
    generation = {"n_background_events": n_background_events, "n_signal_events": n_signal_events,
                  "masses": masses, "pt_hat_min_gev": pt_hat_min_gev, "sqrt_s_tev": sqrt_s_tev, "mpi": mpi,
                  "seed": seed}
    background, signal, source, asked = _samples(ctx, features_table, generation, selection, windows)
    pools = {"background": _in_range(background.table, windows), "signal": _in_range(signal.table, windows)}
    _check_pools(pools, windows, asked)
    tables = _split(pools, s_over_b, windows, seed, asked)
    card = {**source, "processes": _processes(masses, features_table), "selection": selection.as_dict(),
            **windows.as_dict(), "s_over_b": s_over_b, "seed": seed,
            "counts": _counts(tables, background, signal, pools), "units": {"masses": "GeV", "momenta": "GeV"}}
    notes = _notes(windows, masses, pt_min_gev, card, tables, features_table, pt_hat_min_gev)
    return _result(ctx, tables, card, windows, notes, _execution(background, signal))


# --- checks -------------------------------------------------------------------------------


def _windows(m_wprime: float, signal_region: tuple[float | None, float | None],
             sidebands: tuple[float | None, float | None]) -> Windows:
    def edge(given: float | None, fraction: float) -> float:
        return float(round(m_wprime * fraction)) if given is None else given

    sr = (edge(signal_region[0], _SR_FRACTIONS[0]), edge(signal_region[1], _SR_FRACTIONS[1]))
    sb = (edge(sidebands[0], _SB_FRACTIONS[0]), edge(sidebands[1], _SB_FRACTIONS[1]))
    if sr[1] <= sr[0]:
        raise ToolInputError.for_param(
            _TOOL, "signal_region_max_gev", sr[1], f"must be above signal_region_min_gev={sr[0]:g}: the signal "
            "region would be empty. Give a window such as 3300–3700 GeV.")
    if not sb[0] < sr[0]:
        raise ToolInputError.for_param(
            _TOOL, "sideband_min_gev", sb[0], f"must be below the signal region's lower edge {sr[0]:g} GeV: the "
            f"sidebands surround the signal region. Lower it (e.g. to {0.85 * sr[0]:.0f}) or raise "
            "signal_region_min_gev.")
    if not sr[1] < sb[1]:
        raise ToolInputError.for_param(
            _TOOL, "sideband_max_gev", sb[1], f"must be above the signal region's upper edge {sr[1]:g} GeV: the "
            f"sidebands surround the signal region. Raise it (e.g. to {1.35 * sr[1]:.0f}) or lower "
            "signal_region_max_gev.")
    return Windows(sr, sb)


def _check_generation(masses: tuple[float, float, float], sqrt_s_tev: float, pt_min: float,
                      pt_hat_min: float | None, windows: Windows) -> None:
    m_wprime, m_x, m_y = masses
    sqrt_s_gev = 1000.0 * sqrt_s_tev
    if m_x + m_y >= m_wprime:
        raise ToolInputError.for_param(
            _TOOL, "m_wprime_gev", m_wprime, f"must exceed m_x_gev + m_y_gev = {m_x + m_y:g} for W′ → XY to be "
            "open. Raise m_wprime_gev or lower the X/Y masses.")
    if 0.8 * m_wprime >= sqrt_s_gev:
        raise ToolInputError.for_param(
            _TOOL, "m_wprime_gev", m_wprime, f"is out of reach at sqrt_s_tev={sqrt_s_tev:g}: its mass window "
            f"starts at 0.8·m_W′, above √s. Use m_wprime_gev below {sqrt_s_gev / 0.8:g}.")
    pt_hat = _PT_HAT_FRACTION * pt_min if pt_hat_min is None else pt_hat_min
    if pt_hat >= sqrt_s_gev / 2:
        param, value = ("pt_hat_min_gev", pt_hat_min) if pt_hat_min is not None else ("pt_min_gev", pt_min)
        raise ToolInputError.for_param(
            _TOOL, param, value, f"puts the QCD p̂T cut at {pt_hat:g} GeV, above √s/2 = {sqrt_s_gev / 2:g} GeV "
            f"at sqrt_s_tev={sqrt_s_tev:g}. Lower it.")
    if windows.sidebands_gev[0] >= sqrt_s_gev:
        raise ToolInputError.for_param(
            _TOOL, "sideband_min_gev", windows.sidebands_gev[0], f"is above √s = {sqrt_s_gev:g} GeV: no event "
            "could fall in the sidebands. Lower the m_jj windows.")


def _check_pools(pools: dict[str, Table], windows: Windows, asked: dict[str, tuple[str, Any]]) -> None:
    """``asked`` names, per pool, the parameter (and its value) that made it: what the fix changes."""
    (sb_lo, sb_hi), (sr_lo, sr_hi) = windows.sidebands_gev, windows.signal_region_gev
    background = pools["background"][MASS]
    for what, mask, where in (("background", windows.in_sidebands(background),
                               f"background event in the m_jj sidebands {sb_lo:g}–{sr_lo:g} and {sr_hi:g}–{sb_hi:g}"),
                              ("background", windows.in_signal_region(background),
                               f"background event in the m_jj signal region {sr_lo:g}–{sr_hi:g}"),
                              ("signal", np.ones(_length(pools["signal"]), bool),
                               f"signal event inside the m_jj range {sb_lo:g}–{sb_hi:g}")):
        if not mask.any():
            param, value = asked[what]
            more = (f"Use a table with more {what} events there" if param == "features_table"
                    else f"Raise {param}")
            raise ToolInputError.for_param(
                _TOOL, param, value, f"leaves no {where} GeV after the selection (leading-jet pT and |eta| cuts). "
                f"{more}, or move the m_jj windows, or loosen pt_min_gev/eta_max.")


def _split(pools: dict[str, Table], s_over_b: float, windows: Windows, seed: int,
           asked: dict[str, tuple[str, Any]]) -> dict[str, Table]:
    try:
        return split_and_inject(pools["background"], pools["signal"], s_over_b, windows, seed)
    except InjectionError as exc:
        if "S/B" in str(exc):  # too little signal for the injection
            more = " (a table with more signal)" if asked["signal"][0] == "features_table" else \
                " (a larger n_signal_events)"
            raise ToolInputError.for_param(_TOOL, "s_over_b", s_over_b, f"cannot make the dataset: {exc}{more}."
                                           ) from None
        param, value = asked["background"]
        raise ToolInputError.for_param(_TOOL, param, value, f"cannot make the dataset: {exc}.") from None


# --- samples ------------------------------------------------------------------------------


def _samples(ctx: ToolContext, features_table: str | None, generation: dict[str, Any], selection: Selection,
             windows: Windows) -> tuple[DijetSample, DijetSample, dict[str, Any], dict[str, tuple[str, Any]]]:
    """Background and signal, the card's record of where they came from, and the parameter behind each."""
    if features_table is not None:
        background, signal = _imported(ctx, features_table, selection)
        source: dict[str, Any] = {"source": "features_table",
                                  "features_table_sha256": ctx.artifact(features_table).sha256}
        return background, signal, source, dict.fromkeys(("background", "signal"), ("features_table", features_table))
    g = generation
    _check_generation(g["masses"], g["sqrt_s_tev"], selection.pt_min_gev, g["pt_hat_min_gev"], windows)
    pt_hat = _PT_HAT_FRACTION * selection.pt_min_gev if g["pt_hat_min_gev"] is None else g["pt_hat_min_gev"]
    background, signal = _generate((g["n_background_events"], g["n_signal_events"]), g["masses"], pt_hat,
                                   g["sqrt_s_tev"], g["mpi"], g["seed"], selection, ctx)
    source = {"source": "pythia", "generation": {"sqrt_s_tev": g["sqrt_s_tev"], "mpi": g["mpi"],
                                                 "pt_hat_min_gev": pt_hat, "seed": g["seed"],
                                                 "background": background.record, "signal": signal.record}}
    asked = {"background": ("n_background_events", g["n_background_events"]),
             "signal": ("n_signal_events", g["n_signal_events"])}
    return background, signal, source, asked


def _generate(counts: tuple[int, int], masses: tuple[float, float, float], pt_hat: float, sqrt_s_tev: float,
              mpi: bool, seed: int, selection: Selection, ctx: ToolContext) -> tuple[DijetSample, DijetSample]:
    from physagent.tools.simulate.events import process_settings

    switches = (mpi, True, True, True)
    background = process_settings("qcd_dijet", sqrt_s_tev, pt_hat, None, None, None, "default", masses, switches, [])
    signal = process_settings("wprime_to_xy", sqrt_s_tev, None, None, None, None, "default", masses, switches, [])
    seeds = np.random.SeedSequence(seed).generate_state(2)
    return tuple(  # type: ignore[return-value]
        generate_dijets(ctx, process, settings, n, int(s), selection)
        for process, settings, n, s in zip(("qcd_dijet", "wprime_to_xy"), (background, signal), counts, seeds,
                                           strict=True))


def _imported(ctx: ToolContext, table_id: str, selection: Selection) -> tuple[DijetSample, DijetSample]:
    import awkward as ak

    artifact = ctx.artifact(table_id, "features_table")
    array = ak.from_parquet(artifact.path)
    fields = set(ak.fields(array))
    if TRUTH not in fields or not (set(COLUMNS) <= fields or set(LHCO_COLUMNS) <= fields):
        closest = COLUMNS if len(set(COLUMNS) & fields) >= len(set(LHCO_COLUMNS) & fields) else LHCO_COLUMNS
        missing = [name for name in (*closest, TRUTH) if name not in fields]
        raise ToolInputError.for_param(
            _TOOL, "features_table", table_id, f"lacks the column(s) {', '.join(missing)}. A features table needs "
            f"{', '.join(COLUMNS)} (or the LHCO R&D columns {LHCO_COLUMNS[0]} … {LHCO_COLUMNS[-1]}) and the truth "
            f"column {TRUTH!r} (1 signal, 0 background); it has {', '.join(sorted(fields)) or 'no columns'}.")
    columns = {name: ak.to_numpy(array[name]) for name in fields if name in (*COLUMNS, *LHCO_COLUMNS, TRUTH)}
    table = {name: columns[name].astype(np.float64) for name in COLUMNS} if set(COLUMNS) <= fields \
        else lhco_features(columns)
    label = columns[TRUTH]
    if not np.isin(label, (0, 1)).all():
        raise ToolInputError.for_param(
            _TOOL, "features_table", table_id, f"has {TRUTH!r} values other than 0 and 1 "
            f"({', '.join(f'{v:g}' for v in np.unique(label)[:5])}). Label signal 1 and background 0.")
    bad = [name for name, values in table.items() if not np.isfinite(values).all()]
    if bad:
        raise ToolInputError.for_param(
            _TOOL, "features_table", table_id, f"has NaN or infinite values in {', '.join(bad)}. Drop those rows.")
    keep = passes(table, selection)
    return tuple(  # type: ignore[return-value]
        DijetSample({name: values[keep & (label == cls)] for name, values in table.items()},
                    n_generated=int(np.sum(label == cls)))
        for cls in (0, 1))


def _in_range(table: Table, windows: Windows) -> Table:
    lo, hi = windows.sidebands_gev
    keep = (table[MASS] >= lo) & (table[MASS] < hi)
    return {name: values[keep] for name, values in table.items()}


def _length(table: Table) -> int:
    return len(table[MASS])


# --- the card, notes and result ------------------------------------------------------------


def _processes(masses: tuple[float, float, float], features_table: str | None) -> dict[str, Any]:
    if features_table is not None:
        return {"background": "label 0 of the features table", "signal": "label 1 of the features table"}
    return {"background": "qcd_dijet (Pythia8 HardQCD:all)",
            "signal": "wprime_to_xy: W' -> X(-> q qbar) Y(-> q qbar')",
            "m_wprime_gev": masses[0], "m_x_gev": masses[1], "m_y_gev": masses[2]}


def _counts(tables: dict[str, Table], background: DijetSample, signal: DijetSample,
            pools: dict[str, Table]) -> dict[str, Any]:
    def labelled(key: str, label: int) -> int:
        return int(np.sum(tables[key][TRUTH] == label))

    counts: dict[str, Any] = {
        "background_events": background.n_generated, "signal_events": signal.n_generated,
        "background_selected": _length(pools["background"]), "signal_selected": _length(pools["signal"]),
        "data": {"signal": labelled("data", 1), "background": labelled("data", 0)},
        "reference": {"background": labelled("reference", 0)},
        "test": {"signal": labelled("test", 1), "background": labelled("test", 0)},
    }
    if background.record:  # generated: Pythia's cross-sections before the selection
        counts |= {"background_sigma_pb": background.sigma_pb, "signal_sigma_pb": signal.sigma_pb}
    return counts


def _notes(windows: Windows, masses: tuple[float, float, float], pt_min: float, card: dict[str, Any],
           tables: dict[str, Table], features_table: str | None, pt_hat_min: float | None) -> list[str]:
    notes = []
    (sr_lo, sr_hi), (sb_lo, _) = windows.signal_region_gev, windows.sidebands_gev
    if features_table is None and not sr_lo <= masses[0] < sr_hi:
        notes.append(f"the W' mass {masses[0]:g} GeV lies outside the signal region {sr_lo:g}-{sr_hi:g} GeV: the "
                     "injected bump is not where the search looks.")
    if sb_lo < 2.0 * pt_min:
        notes.append(f"the sidebands start at {sb_lo:g} GeV, below 2 x pt_min_gev = {2 * pt_min:g} GeV, where the "
                     "leading-jet cut shapes the m_jj spectrum: a smooth background fit there is biased.")
    if features_table is None and pt_hat_min is not None and pt_hat_min > _PT_HAT_FRACTION * pt_min:
        notes.append(f"pt_hat_min_gev={pt_hat_min:g} is above 5/6 of the leading-jet cut: QCD events with a "
                     "lower p-hat-T that pass the selection are missing, which sculpts the pT and m_jj spectra.")
    sideband_count = int(windows.in_sidebands(tables["data"][MASS]).sum())
    if sideband_count < MIN_SIDEBAND_EVENTS:
        notes.append(f"only {sideband_count} data events in the sidebands: too few for a sideband fit "
                     f"(bump_hunt needs {MIN_SIDEBAND_EVENTS}); generate more background.")
    if card["counts"]["data"]["signal"] == 0:
        notes.append("no signal was injected (s_over_b=0 or too few events): a background-only dataset.")
    if features_table is not None:
        notes.append("features_table given: the generation parameters (event counts, masses, sqrt_s_tev, mpi, "
                     "pt_hat_min_gev, radius) were not used; the pT/eta selection was applied to the table.")
    return notes


def _execution(background: DijetSample, signal: DijetSample) -> dict[str, Any] | None:
    """Where the generation's shards ran (fork pool or Dask workers, attempts), or None for an imported table."""
    if not background.shards_ran and not signal.shards_ran:
        return None
    return executor_record() | {"background_shards": background.shards_ran, "signal_shards": signal.shards_ran}


def _result(ctx: ToolContext, tables: dict[str, Table], card: dict[str, Any], windows: Windows,
            notes: list[str], execution: dict[str, Any] | None = None) -> AnomalyDataset:
    counts = card["counts"]
    data, label = tables["data"], tables["data"][TRUTH]
    in_sr = windows.in_signal_region(data[MASS])
    s_sr, b_sr = int(np.sum(in_sr & (label == 1))), int(np.sum(in_sr & (label == 0)))
    n_s, n_b = counts["data"]["signal"], counts["data"]["background"]
    summary = (f"anomaly dataset ({card['source']}): {n_b:,} background + {n_s:,} signal events in data "
               f"(S/B = {n_s / max(n_b, 1):.2g}; in SR {s_sr}/{b_sr}), SR {windows.signal_region_gev[0]:g}-"
               f"{windows.signal_region_gev[1]:g} GeV, sidebands {windows.sidebands_gev[0]:g}-"
               f"{windows.sidebands_gev[1]:g} GeV")
    artifact = write_search_data(ctx, tables, card, summary, execution)
    generated = card["source"] == "pythia"
    return AnomalyDataset(
        dataset=artifact, source=card["source"], n_data=n_s + n_b, n_signal_injected=n_s, n_background_data=n_b,
        n_reference=counts["reference"]["background"], n_test_signal=counts["test"]["signal"],
        n_test_background=counts["test"]["background"], s_over_b=n_s / max(n_b, 1),
        s_over_b_signal_region=s_sr / max(b_sr, 1), significance_signal_region=s_sr / np.sqrt(max(b_sr, 1)),
        signal_region_gev=list(windows.signal_region_gev), sidebands_gev=list(windows.sidebands_gev),
        background_efficiency=counts["background_selected"] / max(counts["background_events"], 1),
        signal_efficiency=counts["signal_selected"] / max(counts["signal_events"], 1),
        events_generated=(counts["background_events"] + counts["signal_events"]) if generated else 0, notes=notes,
    )
