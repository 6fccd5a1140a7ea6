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
every class has its jets (:mod:`tools.tag._generation`); or taken from given artifacts. Per event, the
``jets_per_event`` hardest jets with pT > pT_min and |η| < η_max are candidates, kept when pT < pT_max.
Selection and truth matching: see :mod:`tools.tag._matching`; the containment fraction (candidate jets
near a top/W that contain all its decay quarks) goes into the dataset card.

Output: a ``dataset`` artifact, ``dataset.parquet`` with one row per jet — the fields of a
``cluster_jets`` jet (pt, eta, phi, e, mass, msd in GeV, tau1–3, tau21, tau32, n_constituents,
constituents: var * {pt, eta, phi, e, deta, dphi, pid, charge}) plus ``label`` (1 signal, 0
background), ``weight`` and ``split`` (0 train, 1 validation, 2 test; stratified, fixed by the seed) —
and ``card.json`` (processes, Pythia settings and seeds, cuts, counts, containment).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._cluster import executor_record
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.tag._features import JET_FEATURES, has_pid, non_finite_fields, particle_feature_names
from physagent.tools.tag._generation import generate_jets
from physagent.tools.tag._matching import Cuts, MatchStats, Pool, Source, partons_for, select_clustered, select_jets

__all__ = ["SPLITS", "DatasetRef", "JetDataset", "make_jet_dataset", "read_dataset", "split_rows"]

DatasetRef = Annotated[str, Accepts(("dataset",)), Field(pattern=ARTIFACT_ID_PATTERN)]
SampleRef = Annotated[str, Accepts(("events", "jets")), Field(pattern=ARTIFACT_ID_PATTERN)]
Task = Literal["top_vs_qcd", "w_vs_qcd", "quark_vs_gluon", "two_samples"]
Balance = Literal["equal_counts", "weights"]
SPLITS = {"train": 0, "validation": 1, "test": 2}

_TASKS: dict[str, tuple[Source, Source | None]] = {
    "top_vs_qcd": (Source("top", "ttbar", "hadronic", "top", 1), Source("QCD", "qcd_dijet", "default", None, 0)),
    "w_vs_qcd": (Source("W", "w_jets", "hadronic", "w", 1), Source("QCD", "qcd_dijet", "default", None, 0)),
    "quark_vs_gluon": (Source("quark/gluon", "z_jets", "invisible", "quark_gluon", 1), None),
    "two_samples": (Source("signal", None, "default", None, 1), Source("background", None, "default", None, 0)),
}
_CLASS_NAMES = {"top_vs_qcd": ("top", "QCD"), "w_vs_qcd": ("W", "QCD"), "quark_vs_gluon": ("quark", "gluon"),
                "two_samples": ("signal", "background")}


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
        ge=10, le=2_000_000, description="Jets per class (signal and background).",
        json_schema_extra={"x-sample-size": True})] = 10_000,
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
    cuts = Cuts(pt_min_gev, pt_max_gev, eta_max, radius, jets_per_event, n_constituents)
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
    task: str, cuts: Cuts, truth_matching: bool, signal: str | None, background: str | None, held_out: float,
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


def _sources(task: str, truth_matching: bool) -> tuple[Source, Source | None]:
    signal, background = _TASKS[task]
    if not truth_matching and signal.match in ("top", "w"):
        signal = Source(signal.name, signal.process, signal.decay, None, signal.label)
    return signal, background


# --- collecting jets ----------------------------------------------------------------------


def _collect(
    ctx: ToolContext, source: Source, sample: str | None, cuts: Cuts, n_per_class: int, balance: str,
    generation: dict[str, Any], index: int,
) -> Pool:
    if sample is not None:
        return _from_artifact(ctx, source, sample, cuts, "signal_sample" if index == 0 else "background_sample")
    return generate_jets(ctx, source, cuts, n_per_class, balance, generation, index)


def _from_artifact(ctx: ToolContext, source: Source, sample: str, cuts: Cuts, param: str) -> Pool:
    from physagent.tools._io import read_parquet

    artifact = ctx.artifact(sample, param)
    data = read_parquet(artifact.path)
    if len(data) == 0:
        raise ToolInputError.for_param("make_jet_dataset", param, sample, "holds no events. Use a non-empty sample.")
    partons = partons_for(ctx, artifact, data, source, param)
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
    pool = Pool(record={"kind": artifact.kind, "sha256": artifact.sha256}, artifact=sample)
    pool.add(jets, labels, stats, n_events=0)  # nothing generated here
    return pool


def _check_radius(artifact: Artifact, cuts: Cuts, param: str) -> None:
    radius = artifact.metadata.get("radius")
    if radius is not None and not math.isclose(float(radius), cuts.radius):
        raise ToolInputError.for_param(
            "make_jet_dataset", param, artifact.id, f"holds jets with R={radius:g}, but radius={cuts.radius:g}. "
            f"Pass radius={radius:g}, or recluster the events with cluster_jets(radius={cuts.radius:g}).")


# --- assembling and writing ---------------------------------------------------------------


def _class_rows(pools: list[Pool]) -> dict[int, Any]:
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


def _assemble(pools: list[Pool], n_per_class: int, balance: str, held_out: tuple[float, float], seed: int
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
           pools: list[Pool], sources: tuple[Source, Source | None], cuts: Cuts, balance: str,
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
    # likewise where the generated shards ran (worker, attempts): provenance, not content
    execution = {source.name: pool.execution for source, pool in zip([s for s in sources if s is not None], pools,
                                                                      strict=True) if pool.execution}
    record = card | {"sample_artifacts": ids} | ({"execution": executor_record() | {"sources": execution}}
                                                  if execution else {})
    artifact = pending.finish("dataset.parquet", summary, record)
    return JetDataset(
        dataset=artifact, n_jets=len(jets), n_signal=n_signal, n_background=n_background,
        n_train=sum(counts["train"].values()), n_validation=sum(counts["validation"].values()),
        n_test=sum(counts["test"].values()), signal=signal_name, background=background_name,
        containment_fraction=containment, match_efficiency=efficiency,
        events_generated=sum(pool.events for pool in pools), has_pid=pid, notes=notes,
    )


def _card(task: str, counts: dict[str, dict[str, int]], pools: list[Pool], sources: tuple[Source, Source | None],
          cuts: Cuts, balance: str, generation: dict[str, Any], stats: MatchStats | None, pid: bool
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
