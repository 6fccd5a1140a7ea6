r"""``merge_samples``: combine p̂T-sliced or process samples into one cross-section-weighted sample.

Sample k (cross-section σ_k in pb, event weights w_i with sum W_k = Σ_{i∈k} w_i) enters with weights

    w'_i = w_i · σ_k / W_k        [pb]

so a histogram of the merged sample weighted by ``weight`` is Σ_k σ_k/W_k · h_k (σ_k/N_k · h_k for
unweighted samples), and the weights sum to σ = Σ_k σ_k (uncertainty √Σ_k δσ_k²). The merged artifact says
so (``weight_unit = 'pb'``): ``histogram(..., luminosity_fb=L)`` then weights by w'·1000·L (1 pb = 1000 fb).
A ``sample`` column (int16) holds k.

A sample of N_k events represents an integrated luminosity N_k/σ_k (in fb⁻¹ with σ in fb); the smallest of
these bounds the luminosity the merged sample can stand for without large weights.

Refused, naming the ids: a sample without σ, different √s, a sample listed twice or merged with a merge that
contains it, and two samples of one process (same hard-process and decay settings, read from the generator
card also for jets) whose p̂T and m̂ windows overlap — summing their σ would count that phase space twice.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.data import _normalise as norm
from physagent.tools.data._normalise import SampleInfo, Window

__all__ = ["MergedSample", "MergedSlice", "merge_samples"]

SampleRef = Annotated[str, Accepts(("events", "jets")), Field(pattern=ARTIFACT_ID_PATTERN)]
# settings that change the event record or the tune, not which hard process (and decay) is generated
_NOT_PROCESS = ("PhaseSpace:", "PartonLevel:", "HadronLevel:", "Random:", "Beams:", "Next:", "Main:", "Tune:")
_SAME_JETS = ("algorithm", "radius")


class MergedSlice(BaseModel):
    """One input sample of a merge."""

    id: str = Field(description="Id of the input sample.")
    label: str = Field(description="Name of the slice, e.g. 'QCD dijet, p̂T 50–100 GeV, Pythia8, 13.6 TeV'.")
    sigma_pb: float = Field(description="Its generator cross-section, in pb.")
    sigma_err_pb: float = Field(description="Uncertainty of sigma_pb, in pb (0 if unknown).")
    n_events: int = Field(description="Events in the slice.")
    sum_weights: float = Field(description="Sum of its event weights before merging (= n_events if unweighted).")
    pt_hat_min_gev: float | None = Field(description="Lower edge of its p̂T window in GeV (None: unknown).")
    pt_hat_max_gev: float | None = Field(description="Upper edge of its p̂T window in GeV (None: no cut).")
    luminosity_fb: float = Field(description="Integrated luminosity the slice represents, n_events/σ, in fb⁻¹.")


class MergedSample(ToolResult):
    """A cross-section-weighted merge of samples (weights in pb)."""

    merged: Artifact = Field(description="The merged artifact (kind of its inputs: events or jets), weights in "
                             "pb, with a 'sample' column naming the slice (0, 1, …).")
    label: str = Field(description="Name of the merged sample, used as its legend entry.")
    n_events: int = Field(description="Events in the merged sample.")
    sigma_pb: float = Field(description="Total cross-section Σσ_k in pb (= the sum of the merged weights).")
    sigma_err_pb: float = Field(description="Its uncertainty √Σδσ_k² in pb.")
    luminosity_fb: float = Field(description="Integrated luminosity the merged sample represents: the smallest "
                                 "slice's n_k/σ_k, in fb⁻¹.")
    limiting_sample: str = Field(description="Id of the slice with the smallest n_k/σ_k.")
    slices: list[MergedSlice] = Field(description="The input samples with σ, size, Σw, p̂T window and luminosity.")


@tool(category="data")
def merge_samples(
    samples: Annotated[
        list[SampleRef], Field(min_length=2, max_length=50, description="Ids of 2 to 50 events (or 2 to 50 "
                               "jets) artifacts: p̂T slices or processes generated with a cross-section.")
    ],
    labels: Annotated[
        list[str] | None, Field(json_schema_extra={"x-derived": True}, description="A name per sample, "
                                "e.g. 'p̂T 50–100 GeV' (None: from process, p̂T window and √s).")
    ] = None,
    *,
    ctx: ToolContext,
) -> MergedSample:
    """Merge p̂T-sliced or process samples into one sample weighted by cross-section (σ_k/Σw_k, in pb).

    Returns the merged artifact, total σ with its uncertainty, and the integrated luminosity each slice
    and the merge represent (n_k/σ_k in fb⁻¹).
    """
    artifacts = _inputs(ctx, samples, labels)
    infos = [norm.sample_info(ctx, a) for a in artifacts]
    _check_compatible(artifacts, infos)
    slices = [_describe(a, i, labels[k] if labels else None) for k, (a, i) in enumerate(
        zip(artifacts, infos, strict=True))]
    _check_weights(samples, slices)
    _check_same_columns(artifacts)
    pending = ctx.new_artifact(artifacts[0].kind)
    primary = artifacts[0].path.name
    _write(ctx, artifacts, slices, pending.directory / primary)
    return _finish(pending, primary, artifacts, infos, slices)


# checks ------------------------------------------------------------------------------------------


def _inputs(ctx: ToolContext, samples: list[str], labels: list[str] | None) -> list[Artifact]:
    if labels is not None and len(labels) != len(samples):
        raise ToolInputError.for_param(
            "merge_samples", "labels", labels, f"must have one entry per sample ({len(samples)}), got "
            f"{len(labels)}. Give one name per sample or leave labels unset.")
    twice = sorted({s for s in samples if samples.count(s) > 1})
    if twice:
        raise ToolInputError.for_param(
            "merge_samples", "samples", samples, f"names {', '.join(twice)} more than once; merging a sample "
            "with itself counts its cross-section twice. List each sample once.")
    artifacts = [ctx.artifact(s, "samples") for s in samples]
    kinds = sorted({a.kind for a in artifacts})
    if len(kinds) > 1:
        raise ToolInputError.for_param(
            "merge_samples", "samples", samples, f"mixes artifact kinds ({', '.join(kinds)}). Merge events "
            "with events (then cluster jets) or jets with jets.")
    return artifacts


def _check_compatible(artifacts: list[Artifact], infos: list[SampleInfo]) -> None:
    ids = [a.id for a in artifacts]
    missing = [a.id for a, i in zip(artifacts, infos, strict=True) if i.sigma_pb is None]
    if missing:
        raise ToolInputError.for_param(
            "merge_samples", "samples", ids, f"includes {', '.join(missing)} without a cross-section (no "
            "sigma_pb in its generator card). Merge samples made by generate_events, or histogram a file "
            "with histogram(luminosity_fb=..., cross_section_pb=...) instead.")
    energies = {i.sqrt_s_tev for i in infos if i.sqrt_s_tev is not None}
    if len(energies) > 1:
        found = ", ".join(f"{a.id}: {i.sqrt_s_tev:g} TeV" for a, i in zip(artifacts, infos, strict=True))
        raise ToolInputError.for_param(
            "merge_samples", "samples", ids, f"were generated at different √s ({found}). Merge samples of "
            "one centre-of-mass energy.")
    inside = [(a.id, b.id) for a in artifacts for b in artifacts if b.id in (a.metadata.get("samples") or [])]
    if inside:
        raise ToolInputError.for_param(
            "merge_samples", "samples", ids, f"includes {inside[0][0]}, a merge that already contains "
            f"{inside[0][1]}: its cross-section would count twice. Leave one of them out.")
    if artifacts[0].kind == "jets":
        _check_same_jets(artifacts)
    _check_overlaps(artifacts, infos)


def _check_weights(samples: list[str], slices: list[MergedSlice]) -> None:
    zero = [s.id for s in slices if s.sum_weights == 0.0]
    if zero:
        raise ToolInputError.for_param(
            "merge_samples", "samples", samples, f"includes {', '.join(zero)} whose weights sum to 0, so "
            "σ/Σw is undefined. Leave it out of the merge.")


def _check_same_jets(artifacts: list[Artifact]) -> None:
    settings = {tuple(a.metadata.get(k) for k in _SAME_JETS) for a in artifacts}
    if len(settings) > 1:
        found = ", ".join(f"{a.id}: {a.metadata.get('algorithm')} R={a.metadata.get('radius')}" for a in artifacts)
        raise ToolInputError.for_param(
            "merge_samples", "samples", [a.id for a in artifacts], f"are jets of different algorithms or radii "
            f"({found}). Cluster every sample with the same settings first.")


def _check_overlaps(artifacts: list[Artifact], infos: list[SampleInfo]) -> None:
    """Pairs of one process (its generator card's, also for jets) whose p̂T and m̂ windows overlap."""
    cards = [(a.id, _process_key(i), i.windows_gev) for a, i in zip(artifacts, infos, strict=True)]
    for k, (id_a, key_a, win_a) in enumerate(cards):
        for id_b, key_b, win_b in cards[k + 1:]:
            if key_a[0] is None or key_a != key_b:
                continue
            if _overlap(win_a["pTHat"], win_b["pTHat"]) and _overlap(win_a["mHat"], win_b["mHat"]):
                raise ToolInputError.for_param(
                    "merge_samples", "samples", [a.id for a in artifacts], f"has {id_a} ({_text(win_a)}) and "
                    f"{id_b} ({_text(win_b)}) of the same process {key_a[0]!r} with overlapping windows: "
                    "summing their cross-sections would count that phase space twice. Generate slices "
                    "with adjoining windows (pt_hat_min_gev/pt_hat_max_gev), or one larger sample.")


def _process_key(info: SampleInfo) -> tuple[str | None, tuple[str, ...]]:
    return info.process, tuple(sorted(s for s in info.settings if not s.strip().startswith(_NOT_PROCESS)))


def _overlap(a: Window, b: Window) -> bool:
    a_high, b_high = a[1] if a[1] is not None else math.inf, b[1] if b[1] is not None else math.inf
    return a[0] < b_high and b[0] < a_high


def _text(windows: dict[str, Window]) -> str:
    return norm.window_text(windows["pTHat"]) or "no p̂T cut"


# merging -------------------------------------------------------------------------------------------


def _describe(artifact: Artifact, info: SampleInfo, label: str | None) -> MergedSlice:
    sum_w, n_events = norm.sum_of_weights(artifact.path)
    sigma = float(info.sigma_pb or 0.0)
    window = info.pt_hat_gev
    return MergedSlice(
        id=artifact.id, label=label or info.label, sigma_pb=sigma, sigma_err_pb=info.sigma_err_pb or 0.0,
        n_events=n_events, sum_weights=sum_w, pt_hat_min_gev=window[0] if window else None,
        pt_hat_max_gev=window[1] if window else None, luminosity_fb=n_events / (sigma * norm.PB_TO_FB),
    )


def _write(ctx: ToolContext, artifacts: list[Artifact], slices: list[MergedSlice], target: Any) -> None:
    """Stream every slice, row group by row group, with weights w·σ_k/Σw_k [pb] and its index k."""
    from physagent.tools._io import write_parquet_row_groups

    total = sum(s.n_events for s in slices)
    with ctx.progress("merging samples", total=total, unit="events") as bar:
        write_parquet_row_groups(_rows(artifacts, slices, bar), target)


def _rows(artifacts: list[Artifact], slices: list[MergedSlice], bar: Any) -> Any:
    import awkward as ak
    import numpy as np

    for index, (artifact, piece) in enumerate(zip(artifacts, slices, strict=True)):
        scale = piece.sigma_pb / piece.sum_weights
        for group in range(ak.metadata_from_parquet(artifact.path)["num_row_groups"]):
            rows = ak.from_parquet(artifact.path, row_groups=[group])
            fields = {f: rows[f] for f in ak.fields(rows) if f not in ("weight", "sample")}
            weight = (ak.values_astype(rows["weight"], np.float64) if "weight" in ak.fields(rows)
                      else ak.Array(np.ones(len(rows))))
            fields["weight"] = weight * scale
            fields["sample"] = ak.Array(np.full(len(rows), index, dtype=np.int16))
            yield ak.zip(fields, depth_limit=1)
            bar.advance(len(rows))


def _check_same_columns(artifacts: list[Artifact]) -> None:
    """Rows are concatenated into one file, so every input must hold the same columns and types."""
    import awkward as ak

    def columns(artifact: Artifact) -> dict[str, Any]:
        form = ak.metadata_from_parquet(artifact.path)["form"]
        return {f: form.content(f).to_dict() for f in form.fields if f not in ("weight", "sample")}

    reference = columns(artifacts[0])
    for artifact in artifacts[1:]:
        found = columns(artifact)
        if found != reference:
            differ = sorted(f for f in set(found) | set(reference) if found.get(f) != reference.get(f))
            raise ToolInputError.for_param(
                "merge_samples", "samples", artifact.id, f"has different columns or types than "
                f"{artifacts[0].id} ({', '.join(differ)}). Merge samples made the same way.")


def _finish(pending: Any, primary: str, artifacts: list[Artifact], infos: list[SampleInfo],
            slices: list[MergedSlice]) -> MergedSample:
    sigma = sum(s.sigma_pb for s in slices)
    sigma_err = math.sqrt(sum(s.sigma_err_pb ** 2 for s in slices))
    limiting = min(slices, key=lambda s: s.luminosity_fb)
    label = _merged_label(infos, slices)
    n_events = sum(s.n_events for s in slices)
    processes = {i.process for i in infos}
    metadata = {
        "process": processes.pop() if len(processes) == 1 else "merged", "sqrt_s_tev": infos[0].sqrt_s_tev,
        "sigma_pb": sigma, "sigma_err_pb": sigma_err, "weight_unit": "pb", "sample_label": label,
        "n_events": n_events, "samples": [a.id for a in artifacts], "slices": [s.model_dump() for s in slices],
        "luminosity_fb": limiting.luminosity_fb,
        **{k: artifacts[0].metadata.get(k) for k in _SAME_JETS if artifacts[0].kind == "jets"},
    }
    summary = (f"{n_events:,} events merged from {len(slices)} samples ({label}), σ = {sigma:.4g} ± "
               f"{sigma_err:.2g} pb, weights in pb; ≈ {limiting.luminosity_fb:.3g} fb⁻¹ ({limiting.id})")
    artifact = pending.finish(primary, summary, metadata)
    return MergedSample(merged=artifact, label=label, n_events=n_events, sigma_pb=sigma, sigma_err_pb=sigma_err,
                        luminosity_fb=limiting.luminosity_fb, limiting_sample=limiting.id, slices=slices)


def _merged_label(infos: list[SampleInfo], slices: list[MergedSlice]) -> str:
    """'QCD dijet, p̂T > 50 GeV (2 slices), Pythia8, 13.6 TeV', or 'A + B, …' for different processes."""
    processes = list(dict.fromkeys(norm.process_label(i.process) if i.process else s.label
                                   for i, s in zip(infos, slices, strict=True)))
    head = " + ".join(processes)
    if len(processes) == 1:
        lows = [s.pt_hat_min_gev for s in slices]
        highs = [s.pt_hat_max_gev for s in slices]
        low = min((x for x in lows if x is not None), default=None)
        window = norm.window_text((low, None if None in highs else max(h for h in highs if h is not None))
                             if low is not None else None)
        head += (f", {window}" if window else "") + f" ({len(slices)} slices)"
    pythia = all("Pythia8" in i.label for i in infos)
    energy = f"{infos[0].sqrt_s_tev:g} TeV" if infos[0].sqrt_s_tev else ""
    return ", ".join(p for p in (head, "Pythia8" if pythia else "", energy) if p)
