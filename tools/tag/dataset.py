r"""``make_jet_dataset``: labelled, truth-matched jet samples for tagger training, from simulation.

Tasks and what the classes are (signal label 1, background label 0):

- ``top_vs_qcd``: hadronic tt̄ (Pythia8 ``ttbar``, W → qq̄′) vs QCD dijets (``qcd_dijet``); a top jet
  counts when the top and its b, q, q̄′ lie within ΔR < R of the jet axis.
- ``w_vs_qcd``: W(→qq̄′)+jet (``w_jets``, hadronic) vs QCD dijets; the W and both quarks within ΔR < R.
- ``quark_vs_gluon``: Z(→νν)+jet (``z_jets``): a jet is labelled by the hard outgoing parton within
  ΔR < R, quark (|pid| 1–5, label 1) or gluon (label 0).
- ``two_samples``: any two ``events`` or ``jets`` artifacts, labelled by sample (no truth matching).

Samples are generated with the cores of ``generate_events`` and ``cluster_jets`` (p̂T window
[0.9 pT_min, 1.25 pT_max], anti-kT with radius R, soft drop β = 0, z_cut = 0.1) in seeded rounds until
every class has its jets; or taken from given artifacts. Per event, the ``jets_per_event`` hardest jets
with pT > pT_min and |η| < η_max are candidates, kept when pT < pT_max. Truth matching: see
:mod:`tools.tag._matching`; the containment fraction (candidate jets near a top/W that contain all its
decay quarks) goes into the dataset card.

Output: a ``dataset`` artifact, ``dataset.parquet`` with one row per jet — the fields of a
``cluster_jets`` jet (pt, eta, phi, e, mass, msd in GeV, tau1–3, tau21, tau32, n_constituents,
constituents: var * {pt, eta, phi, e, deta, dphi, pid, charge}) plus ``label`` (1 signal, 0
background), ``weight`` and ``split`` (0 train, 1 validation, 2 test; stratified, fixed by the seed) —
and ``card.json`` (processes, Pythia settings and seeds, cuts, counts, containment).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.tag._features import JET_FEATURES, has_pid, non_finite_fields, particle_feature_names
from physagent.tools.tag._matching import MatchStats, match_event

__all__ = ["SPLITS", "DatasetRef", "JetDataset", "make_jet_dataset", "read_dataset", "split_rows"]

DatasetRef = Annotated[str, Accepts(("dataset",)), Field(pattern=ARTIFACT_ID_PATTERN)]
SampleRef = Annotated[str, Accepts(("events", "jets")), Field(pattern=ARTIFACT_ID_PATTERN)]
Task = Literal["top_vs_qcd", "w_vs_qcd", "quark_vs_gluon", "two_samples"]
Balance = Literal["equal_counts", "weights"]
SPLITS = {"train": 0, "validation": 1, "test": 2}

_PT_HAT_WINDOW = (0.9, 1.25)  # p̂T window as fractions of the jet pT window
_FIRST_YIELD_GUESS = 0.3  # useful jets per event assumed before the first round has measured it
_MAX_ROUNDS = 8
_MIN_SHARDS = 2  # fixed (not the core count), so the events depend on the seed only


@dataclass(frozen=True)
class _Source:
    """Where one class (or both, for quark/gluon) comes from and how its jets are labelled."""

    name: str
    process: str | None
    decay: str
    match: str | None  # top, w, quark_gluon or None (every jet gets ``label``)
    label: int


_TASKS: dict[str, tuple[_Source, _Source | None]] = {
    "top_vs_qcd": (_Source("top", "ttbar", "hadronic", "top", 1), _Source("QCD", "qcd_dijet", "default", None, 0)),
    "w_vs_qcd": (_Source("W", "w_jets", "hadronic", "w", 1), _Source("QCD", "qcd_dijet", "default", None, 0)),
    "quark_vs_gluon": (_Source("quark/gluon", "z_jets", "invisible", "quark_gluon", 1), None),
    "two_samples": (_Source("signal", None, "default", None, 1), _Source("background", None, "default", None, 0)),
}
_CLASS_NAMES = {"top_vs_qcd": ("top", "QCD"), "w_vs_qcd": ("W", "QCD"), "quark_vs_gluon": ("quark", "gluon"),
                "two_samples": ("signal", "background")}


@dataclass(frozen=True)
class _Cuts:
    pt_min_gev: float
    pt_max_gev: float
    eta_max: float
    radius: float
    jets_per_event: int
    n_constituents: int


@dataclass
class _Pool:
    """Jets collected for one source, with their labels (−1: failed truth matching)."""

    chunks: list[Any] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    stats: MatchStats = field(default_factory=MatchStats)
    events: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    artifact: str | None = None  # the sample artifact's id, when the jets came from one

    def add(self, jets: Any, labels: np.ndarray, stats: MatchStats, n_events: int) -> None:
        self.chunks.append(jets)
        self.labels.append(labels)
        self.stats.add(stats)
        self.events += n_events

    def count(self, label: int) -> int:
        return int(sum(int((labels == label).sum()) for labels in self.labels))


class JetDataset(ToolResult):
    """A labelled jet dataset with train/validation/test splits."""

    dataset: Artifact = Field(description="The dataset artifact (kind 'dataset'): dataset.parquet and card.json.")
    n_jets: int = Field(description="Jets in the dataset, all splits.")
    n_signal: int = Field(description="Signal jets (label 1).")
    n_background: int = Field(description="Background jets (label 0).")
    n_train: int = Field(description="Jets in the training split.")
    n_validation: int = Field(description="Jets in the validation split.")
    n_test: int = Field(description="Jets in the test split.")
    signal: str = Field(description="What label 1 means, e.g. 'top'.")
    background: str = Field(description="What label 0 means, e.g. 'QCD'.")
    containment_fraction: float | None = Field(
        description="Of candidate jets with a top/W within ΔR < R of the axis, the fraction that also contain "
                    "all its decay quarks (None without truth matching).")
    match_efficiency: float | None = Field(
        description="Fraction of candidate jets of the matched sample that passed truth matching (None without).")
    events_generated: int = Field(
        description="Pythia events generated for this dataset (0 when all came from artifacts).")
    has_pid: bool = Field(description="Constituents carry pid and charge (PID features available).")
    notes: list[str] = Field(description="Anything the user should know: downsampling, reused artifacts.")


@tool(category="tag", version="1")
def make_jet_dataset(
    task: Annotated[Task, Field(
        description="What to separate: top_vs_qcd, w_vs_qcd, quark_vs_gluon (Z+jet), or two_samples "
                    "(two given artifacts, labelled by sample).",
        json_schema_extra={"x-phrases": {"top tagger": "top_vs_qcd", "top tagging": "top_vs_qcd",
                                         "w tagger": "w_vs_qcd", "w tagging": "w_vs_qcd",
                                         "quark gluon": "quark_vs_gluon", "quark/gluon": "quark_vs_gluon",
                                         "q/g": "quark_vs_gluon"}},
    )] = "top_vs_qcd",
    n_jets_per_class: Annotated[int, Field(
        ge=10, le=2_000_000, description="Jets per class (signal and background).")] = 10_000,
    pt_min_gev: Annotated[float, Field(ge=0, description="Minimum jet pT in GeV.")] = 550.0,
    pt_max_gev: Annotated[float, Field(gt=0, description="Maximum jet pT in GeV.")] = 650.0,
    eta_max: Annotated[float, Field(gt=0, le=5, description="Maximum jet |η|.")] = 2.0,
    radius: Annotated[float, Field(gt=0, le=2.0, description="Anti-kT jet radius R; also the matching ΔR.")] = 0.8,
    n_constituents: Annotated[int, Field(ge=1, le=512, description="Leading constituents kept per jet.")] = 64,
    jets_per_event: Annotated[int, Field(ge=1, le=4, description="Hardest jets per event considered.")] = 2,
    truth_matching: Annotated[bool, Field(
        description="Keep only signal jets that contain the top/W and all its decay quarks (required for "
                    "quark_vs_gluon; ignored for two_samples).")] = True,
    signal_sample: Annotated[SampleRef | None, Field(
        description="Use this events or jets artifact for the signal (or for both classes in quark_vs_gluon) "
                    "instead of generating.")] = None,
    background_sample: Annotated[SampleRef | None, Field(
        description="Use this events or jets artifact for the background instead of generating.")] = None,
    balance: Annotated[Balance, Field(
        description="equal_counts: the same number of jets per class; weights: keep what was collected and "
                    "weight each class to the same total.")] = "equal_counts",
    validation_fraction: Annotated[float, Field(ge=0.05, le=0.5, description="Fraction of jets for validation.")
                                   ] = 0.2,
    test_fraction: Annotated[float, Field(ge=0.05, le=0.5, description="Fraction of jets for testing.")] = 0.2,
    sqrt_s_tev: Annotated[float, Field(gt=0, le=100, description="Centre-of-mass energy in TeV when generating.")
                          ] = 13.6,
    mpi: Annotated[bool, Field(description="Multi-parton interactions when generating (off as in the public "
                                           "top-tagging samples, and ~6× faster).")] = False,
    seed: Annotated[int, Field(ge=0, description="Random seed for generation and the split.")] = 0,
    *,
    ctx: ToolContext,
) -> JetDataset:
    """Build a labelled jet dataset (top vs QCD, W vs QCD, quark vs gluon) for tagger training.

    Generates the processes with Pythia8 (or takes given artifacts), clusters anti-kT jets, truth-matches
    signal jets, keeps the leading constituents, and splits train/validation/test.
    """
    cuts = _Cuts(pt_min_gev, pt_max_gev, eta_max, radius, jets_per_event, n_constituents)
    _check_request(task, cuts, truth_matching, signal_sample, background_sample, validation_fraction + test_fraction)
    sources = _sources(task, truth_matching)
    generation = {"sqrt_s_tev": sqrt_s_tev, "mpi": mpi, "seed": seed}
    pools = [
        _collect(ctx, source, sample, cuts, n_jets_per_class, balance, generation, index)
        for index, (source, sample) in enumerate(zip(sources, (signal_sample, background_sample), strict=False))
        if source is not None
    ]
    jets, counts, notes = _assemble(pools, n_jets_per_class, balance, (validation_fraction, test_fraction), seed)
    return _write(ctx, task, jets, counts, notes, pools, sources, cuts, balance, generation)


def _check_request(
    task: str, cuts: _Cuts, truth_matching: bool, signal: str | None, background: str | None, held_out: float,
) -> None:
    if cuts.pt_max_gev <= cuts.pt_min_gev:
        raise ToolInputError.for_param(
            "make_jet_dataset", "pt_max_gev", cuts.pt_max_gev,
            f"must be larger than pt_min_gev={cuts.pt_min_gev:g}. Give a pT window such as 550–650 GeV.")
    if held_out > 0.8:
        raise ToolInputError.for_param(
            "make_jet_dataset", "test_fraction", round(held_out, 3),
            "plus validation_fraction leaves under 20% of the jets for training. Lower one of them.")
    if task == "two_samples" and (signal is None or background is None):
        raise ToolInputError.for_param(
            "make_jet_dataset", "signal_sample" if signal is None else "background_sample", None,
            "is required for task='two_samples'. Pass the ids of two events or jets artifacts.")
    if task == "quark_vs_gluon" and background is not None:
        raise ToolInputError.for_param(
            "make_jet_dataset", "background_sample", background,
            "does not apply to quark_vs_gluon: both classes come from one Z+jet sample (signal_sample).")
    if task == "quark_vs_gluon" and not truth_matching:
        raise ToolInputError.for_param(
            "make_jet_dataset", "truth_matching", False,
            "is required for quark_vs_gluon: the parton flavour is the label. Set truth_matching=True.")


def _sources(task: str, truth_matching: bool) -> tuple[_Source, _Source | None]:
    signal, background = _TASKS[task]
    if not truth_matching and signal.match in ("top", "w"):
        signal = _Source(signal.name, signal.process, signal.decay, None, signal.label)
    return signal, background


# --- collecting jets ----------------------------------------------------------------------


def _collect(
    ctx: ToolContext, source: _Source, sample: str | None, cuts: _Cuts, n_per_class: int, balance: str,
    generation: dict[str, Any], index: int,
) -> _Pool:
    if sample is not None:
        return _from_artifact(ctx, source, sample, cuts, "signal_sample" if index == 0 else "background_sample")
    return _generate(ctx, source, cuts, n_per_class, balance, generation, index)


def _wanted_labels(source: _Source) -> tuple[int, ...]:
    return (1, 0) if source.match == "quark_gluon" else (source.label,)


def _missing(pool: _Pool, source: _Source, n_per_class: int, balance: str) -> int:
    labels = _wanted_labels(source)
    if balance == "weights" and len(labels) == 2:
        return max(0, len(labels) * n_per_class - sum(pool.count(label) for label in labels))
    return sum(max(0, n_per_class - pool.count(label)) for label in labels)


def _generate(
    ctx: ToolContext, source: _Source, cuts: _Cuts, n_per_class: int, balance: str, generation: dict[str, Any],
    index: int,
) -> _Pool:
    from physagent.tools.simulate import _pythia
    from physagent.tools.simulate.events import EVENTS_PER_SHARD, process_settings

    assert source.process is not None  # two_samples never generates (checked in _check_request)
    pt_hat = (cuts.pt_min_gev * _PT_HAT_WINDOW[0], min(cuts.pt_max_gev * _PT_HAT_WINDOW[1],
                                                       0.45 * generation["sqrt_s_tev"] * 1000.0))
    settings = process_settings(
        source.process, generation["sqrt_s_tev"], pt_hat[0], pt_hat[1], None, None, source.decay,
        (3500.0, 500.0, 100.0), (generation["mpi"], True, True, True), [])
    pool = _Pool(record={"process": source.process, "decay": source.decay, "pythia_settings": settings,
                         "pt_hat_window_gev": list(pt_hat), "rounds": []})
    workers = int(os.environ.get("PHYSAGENT_WORKERS") or os.cpu_count() or 1)
    seeds = np.random.SeedSequence([generation["seed"], index]).generate_state(_MAX_ROUNDS)
    total = _missing(pool, source, n_per_class, balance)
    with ctx.progress(f"{source.name} jets from Pythia8 {source.process}", total=total, unit="jets") as bar, \
            ctx.progress(f"Pythia8 {source.process} events", total=None, unit="events") as events_bar:
        for round_seed in seeds:
            missing = _missing(pool, source, n_per_class, balance)
            if missing == 0:
                break
            n_events = _events_for(missing, pool)
            plan = _pythia.shard_plan(n_events, max(_MIN_SHARDS, math.ceil(n_events / EVENTS_PER_SHARD)),
                                      int(round_seed))
            pool.record["rounds"].append({"n_events": n_events, "seed": int(round_seed),
                                          "shards": [{"n_events": n, "pythia_seed": s} for n, s in plan]})
            for shard in _run(settings, plan, workers, events_bar.advance, source):
                jets, labels, stats = select_jets(shard.events.particles, shard.events.partons, cuts, source)
                pool.add(jets, labels, stats, shard.n_accepted)
                still_missing = _missing(pool, source, n_per_class, balance)
                bar.advance(missing - still_missing)
                missing = still_missing
            if not any(pool.count(label) for label in _wanted_labels(source)):
                raise ToolRuntimeError(
                    f"make_jet_dataset: {n_events:,} {source.process} events gave no {source.name} jet with "
                    f"{cuts.pt_min_gev:g} < pT < {cuts.pt_max_gev:g} GeV and |eta| < {cuts.eta_max:g}. "
                    "Widen the pT window or check the process.")
    return pool


def _events_for(missing: int, pool: _Pool) -> int:
    """Events for the next round: the missing jets over the measured yield, with 15% to spare."""
    collected = sum(int((labels >= 0).sum()) for labels in pool.labels)
    per_event = collected / pool.events if pool.events and collected else _FIRST_YIELD_GUESS
    return math.ceil(missing / max(per_event, 0.01) * 1.15) + 100


def _run(settings: list[str], plan: list[tuple[int, int]], workers: int, report: Callable[[float], None],
         source: _Source) -> Any:
    from physagent.tools.simulate import _pythia

    try:
        yield from _pythia.generate(settings, plan, workers, report)
    except RuntimeError as exc:
        raise ToolRuntimeError(f"make_jet_dataset: Pythia failed for process {source.process!r}: {exc}") from exc


def select_jets(particles: Any, partons: Any, cuts: _Cuts, source: _Source) -> tuple[Any, np.ndarray, MatchStats]:
    """Cluster events and return the candidate jets (flat records), their labels and matching counts."""
    from physagent.tools.simulate._jets import cluster_events

    jets = cluster_events(particles, "antikt", cuts.radius, cuts.pt_min_gev, cuts.eta_max, cuts.n_constituents)
    return select_clustered(jets, partons, cuts, source)


def select_clustered(jets: Any, partons: Any, cuts: _Cuts, source: _Source) -> tuple[Any, np.ndarray, MatchStats]:
    """The window and truth matching on already clustered ``events × jets`` records."""
    import awkward as ak

    jets = jets[(jets.pt > cuts.pt_min_gev) & (abs(jets.eta) < cuts.eta_max)][:, :cuts.jets_per_event]
    jets = jets[jets.pt < cuts.pt_max_gev]
    flat = ak.flatten(jets)
    if source.match is None:
        return flat, np.full(len(flat), source.label, dtype=np.int8), MatchStats()
    labels, stats = _match(np.asarray(ak.num(jets)), np.asarray(flat.eta), np.asarray(flat.phi), partons,
                           source.match, cuts.radius)
    return flat, labels, stats


def _match(jets_per_event: np.ndarray, eta: np.ndarray, phi: np.ndarray, partons: Any, mode: str,
           radius: float) -> tuple[np.ndarray, MatchStats]:
    import awkward as ak

    p4 = np.stack([np.asarray(ak.flatten(partons[name]), dtype=np.float64) for name in ("px", "py", "pz", "e")], 1)
    pid = np.asarray(ak.flatten(partons.pid), dtype=np.int64)
    status = np.asarray(ak.flatten(partons.status), dtype=np.int64)
    parton_offsets = np.concatenate([[0], np.cumsum(np.asarray(ak.num(partons)))])
    jet_offsets = np.concatenate([[0], np.cumsum(jets_per_event)])
    labels = np.full(len(eta), -1, dtype=np.int8)
    stats = MatchStats()
    for event in np.flatnonzero(jets_per_event):
        jsl = slice(jet_offsets[event], jet_offsets[event + 1])
        psl = slice(parton_offsets[event], parton_offsets[event + 1])
        labels[jsl], event_stats = match_event(eta[jsl], phi[jsl], p4[psl], pid[psl], status[psl], mode, radius)
        stats.add(event_stats)
    return labels, stats


def _from_artifact(ctx: ToolContext, source: _Source, sample: str, cuts: _Cuts, param: str) -> _Pool:
    from physagent.tools._io import read_parquet

    artifact = ctx.artifact(sample, param)
    data = read_parquet(artifact.path)
    if len(data) == 0:
        raise ToolInputError.for_param("make_jet_dataset", param, sample, "holds no events. Use a non-empty sample.")
    partons = _partons_for(ctx, artifact, data, source, param)
    if artifact.kind == "jets":
        _check_radius(artifact, cuts, param)
        jets, labels, stats = select_clustered(data.jets, partons, cuts, source)
    else:
        jets, labels, stats = select_jets(data.particles, partons, cuts, source)
    bad = non_finite_fields(jets) if len(jets) else []
    if bad:
        raise ToolInputError.for_param(
            "make_jet_dataset", param, sample, f"has NaN or infinite values in {', '.join(bad)}. "
            "Remove or fix those jets before building a dataset.")
    pool = _Pool(record={"kind": artifact.kind, "sha256": artifact.sha256}, artifact=sample)
    pool.add(jets, labels, stats, n_events=0)  # nothing generated here
    return pool


def _partons_for(ctx: ToolContext, artifact: Artifact, data: Any, source: _Source, param: str) -> Any:
    """The hard-process partons per event of the sample (from the jets' source events), if matching needs them."""
    import awkward as ak

    from physagent.tools._io import read_parquet

    if source.match is None:
        return None
    if artifact.kind == "events":
        events = data
    else:
        source_id = artifact.metadata.get("source")
        found = ctx.workspace.get_artifact(source_id) if source_id else None
        events = read_parquet(found.path, columns=["partons"])[np.asarray(data.event)] if found else None
    if events is None or "partons" not in ak.fields(events):
        raise ToolInputError.for_param(
            "make_jet_dataset", param, artifact.id, "has no hard-process partons, which truth matching needs. "
            "Use a sample from generate_events, or set truth_matching=False.")
    return events.partons


def _check_radius(artifact: Artifact, cuts: _Cuts, param: str) -> None:
    radius = artifact.metadata.get("radius")
    if radius is not None and not math.isclose(float(radius), cuts.radius):
        raise ToolInputError.for_param(
            "make_jet_dataset", param, artifact.id, f"holds jets with R={radius:g}, but radius={cuts.radius:g}. "
            f"Pass radius={radius:g}, or recluster the events with cluster_jets(radius={cuts.radius:g}).")


# --- assembling and writing ---------------------------------------------------------------


def _class_rows(pools: list[_Pool]) -> dict[int, Any]:
    """label → the jets of that class, in collection order."""
    import awkward as ak

    rows: dict[int, list[Any]] = {1: [], 0: []}
    for pool in pools:
        for jets, labels in zip(pool.chunks, pool.labels, strict=True):
            for label in (1, 0):
                picked = jets[labels == label]
                if len(picked):
                    rows[label].append(picked)
    return {label: ak.concatenate(chunks) if chunks else None for label, chunks in rows.items()}


def _assemble(pools: list[_Pool], n_per_class: int, balance: str, held_out: tuple[float, float], seed: int
              ) -> tuple[Any, dict[str, dict[str, int]], list[str]]:
    import awkward as ak

    rows = _class_rows(pools)
    available = {label: 0 if jets is None else len(jets) for label, jets in rows.items()}
    if min(available.values()) == 0:
        empty = "signal" if available[1] == 0 else "background"
        param = "background_sample" if empty == "background" and len(pools) == 2 else "signal_sample"
        raise ToolInputError.for_param(
            "make_jet_dataset", param, pools[len(pools) - 1 if param == "background_sample" else 0].artifact,
            f"leaves no {empty} jets inside the cuts ({available[1]} signal, {available[0]} "
            "background): the dataset would be empty. Widen the pT/η window or use samples that populate it.")
    notes: list[str] = []
    take = {label: min(n_per_class, count) for label, count in available.items()}
    if balance == "equal_counts":
        take = dict.fromkeys(take, min(take.values()))
    if take[1] < n_per_class or take[0] < n_per_class:
        notes.append(f"only {take[1]:,} signal and {take[0]:,} background jets (asked for {n_per_class:,} per "
                     "class): the samples held no more inside the cuts and truth matching.")
    rng = np.random.default_rng(seed)
    parts = []
    for label in (1, 0):
        jets = rows[label][: take[label]]
        weight = sum(take.values()) / (2.0 * take[label]) if balance == "weights" else 1.0
        parts.append(_with_columns(jets, label, weight, _split_codes(take[label], held_out, rng)))
    merged = ak.concatenate(parts)
    merged = merged[rng.permutation(len(merged))]
    return merged, _counts(merged), notes


def _split_codes(n: int, held_out: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    n_val, n_test = round(held_out[0] * n), round(held_out[1] * n)
    codes = np.zeros(n, dtype=np.int8)
    order = rng.permutation(n)
    codes[order[:n_val]] = SPLITS["validation"]
    codes[order[n_val:n_val + n_test]] = SPLITS["test"]
    return codes


def _with_columns(jets: Any, label: int, weight: float, split: np.ndarray) -> Any:
    import awkward as ak

    fields = {name: jets[name] for name in ak.fields(jets)}
    fields |= {"label": np.full(len(jets), label, dtype=np.int8),
               "weight": np.full(len(jets), weight, dtype=np.float32), "split": split}
    return ak.zip(fields, depth_limit=1)


def _counts(jets: Any) -> dict[str, dict[str, int]]:
    label, split = np.asarray(jets.label), np.asarray(jets.split)
    return {name: {"signal": int(((split == code) & (label == 1)).sum()),
                   "background": int(((split == code) & (label == 0)).sum())} for name, code in SPLITS.items()}


def _write(ctx: ToolContext, task: str, jets: Any, counts: dict[str, dict[str, int]], notes: list[str],
           pools: list[_Pool], sources: tuple[_Source, _Source | None], cuts: _Cuts, balance: str,
           generation: dict[str, Any]) -> JetDataset:
    from physagent.tools._io import write_json, write_parquet

    stats = MatchStats()
    for pool in pools:
        stats.add(pool.stats)
    matched = any(source is not None and source.match for source in sources)
    containment = stats.contained / stats.axis_matched if matched and stats.axis_matched else None
    efficiency = stats.contained / stats.candidates if matched and stats.candidates else None
    signal_name, background_name = _CLASS_NAMES[task]
    pid = has_pid(jets)
    card = _card(task, counts, pools, sources, cuts, balance, generation, stats if matched else None, pid)
    pending = ctx.new_artifact("dataset")
    write_parquet(jets, pending.directory / "dataset.parquet")
    write_json(card, pending.directory / "card.json")
    n_signal = sum(c["signal"] for c in counts.values())
    n_background = sum(c["background"] for c in counts.values())
    summary = (f"{signal_name} vs {background_name}: {n_signal:,} + {n_background:,} jets, "
               f"{cuts.pt_min_gev:g}<pT<{cuts.pt_max_gev:g} GeV, |eta|<{cuts.eta_max:g}, R={cuts.radius:g}"
               + (f", containment {containment:.0%}" if containment is not None else ""))
    # artifact ids differ in a rerun, so they live in the record, not in the hashed card.json
    ids = {source.name: pool.artifact for source, pool in zip([s for s in sources if s is not None], pools, strict=True)
           if pool.artifact}
    artifact = pending.finish("dataset.parquet", summary, card | {"sample_artifacts": ids})
    return JetDataset(
        dataset=artifact, n_jets=len(jets), n_signal=n_signal, n_background=n_background,
        n_train=sum(counts["train"].values()), n_validation=sum(counts["validation"].values()),
        n_test=sum(counts["test"].values()), signal=signal_name, background=background_name,
        containment_fraction=containment, match_efficiency=efficiency,
        events_generated=sum(pool.events for pool in pools), has_pid=pid, notes=notes,
    )


def _card(task: str, counts: dict[str, dict[str, int]], pools: list[_Pool], sources: tuple[_Source, _Source | None],
          cuts: _Cuts, balance: str, generation: dict[str, Any], stats: MatchStats | None, pid: bool
          ) -> dict[str, Any]:
    signal_name, background_name = _CLASS_NAMES[task]
    samples = {source.name: pool.record | {"events": pool.events, "truth_matching": source.match}
               for source, pool in zip([s for s in sources if s is not None], pools, strict=True)}
    matching = None if stats is None else {
        "candidates": stats.candidates, "axis_matched": stats.axis_matched, "contained": stats.contained,
        "containment_fraction": stats.contained / stats.axis_matched if stats.axis_matched else None,
        "match_efficiency": stats.contained / stats.candidates if stats.candidates else None,
        "definition": "a signal jet counts when the top (or W) and all its decay quarks lie within dR < R of "
                      "the jet axis; quark/gluon jets take the flavour of the hard parton within dR < R",
    }
    return {
        "task": task, "labels": {"1": signal_name, "0": background_name}, "samples": samples,
        "cuts": {"algorithm": "antikt", "radius": cuts.radius, "pt_min_gev": cuts.pt_min_gev,
                 "pt_max_gev": cuts.pt_max_gev, "eta_max": cuts.eta_max, "jets_per_event": cuts.jets_per_event,
                 "n_constituents": cuts.n_constituents, "softdrop_beta": 0.0, "softdrop_zcut": 0.1},
        "generation": generation, "truth_matching": matching, "balance": balance, "counts": counts,
        "split_codes": SPLITS, "has_pid": pid,
        "features": {"particle": particle_feature_names("kinematic+pid" if pid else "kinematic"),
                     "jet": list(JET_FEATURES)},
        "units": {"momenta": "GeV", "masses": "GeV", "angles": "rad"},
    }


def read_dataset(path: Any) -> Any:
    """The jets of a dataset artifact (one record per jet)."""
    from physagent.tools._io import read_parquet

    return read_parquet(path)


def split_rows(jets: Any, split: str) -> np.ndarray:
    """Row indices of a split ('train', 'validation', 'test') or of all rows ('all')."""
    if split == "all":
        return np.arange(len(jets))
    return np.flatnonzero(np.asarray(jets.split) == SPLITS[split])
