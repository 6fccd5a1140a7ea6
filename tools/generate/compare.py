r"""``compare_samples``: how far a candidate sample is from a reference — the generative-model validation suite.

Works on any two samples, not only generator output: ``showers`` against ``showers`` (on the shower
observables of :mod:`tools.generate._observables`), and ``table``, ``jets`` or ``events`` artifacts on
features that are expressions of the safe language of ``summarize`` (``jets.mass[0]``, ``m_hat_gev``,
``len(particles)``; :mod:`tools.generate._samples`). It reports

- per feature (:mod:`tools.generate._distances`): Wasserstein-1 in the feature's unit and divided by the
  reference's standard deviation, the Kolmogorov–Smirnov statistic and p-value, and χ²/ndf on common
  equal-population bins; for showers also the pooled cell-energy spectrum (log10 E/MeV);
- a classifier two-sample test (:mod:`tools.generate._two_sample`): held-out ROC AUC of a GBDT and an MLP
  trained to tell the samples apart on the standardised features, with Hanley–McNeil errors (0.5: the
  classifier cannot tell them apart);
- the Fréchet and kernel physics distances FPD and KPD of Kansal et al., arXiv:2211.10295
  (:mod:`tools.generate._physics_distances`), on the same features.

Outputs: a ``table`` artifact ``distances.parquet`` (one row per feature: feature, unit, pooled,
n_reference, n_candidate, reference_mean, candidate_mean, reference_std, candidate_std, w1, w1_over_std,
ks, ks_p, chi2, ndf, chi2_ndf) and a ``plot`` artifact ``plot.png``/``plot.pdf`` with both samples'
histograms and their ratio for up to 12 features. Samples and weights: every row counts once
(unweighted); samples larger than ``max_rows`` are subsampled with the seed.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.generate._compare_plot import MAX_PANELS, draw_comparison, save_comparison
from physagent.tools.generate._distances import FeatureDistances, feature_distances
from physagent.tools.generate._physics_distances import fpd, kpd
from physagent.tools.generate._samples import Sample, load_pair
from physagent.tools.generate._two_sample import MIN_ROWS_PER_CLASS, classifier_test

__all__ = ["FeatureComparison", "SampleComparison", "SampleRef", "compare_samples"]

SampleRef = Annotated[str, Accepts(("showers", "table", "jets", "events")), Field(pattern=ARTIFACT_ID_PATTERN)]
_MAX_POOLED = 500_000  # pooled cell energies per sample: W1 and KS stay well under a second


class FeatureComparison(BaseModel):
    """The distances between the two samples of one feature."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Feature: an expression such as 'jets.mass[0]' or a shower observable name.")
    unit: str = Field(description="Unit of the feature and of w1: 'GeV', 'MeV', 'mm' or '' (dimensionless).")
    pooled: bool = Field(description="True for a distribution pooled over all showers (the cell-energy "
                                     "spectrum), compared on its own and not used by the classifiers or FPD/KPD.")
    w1: float = Field(description="Wasserstein-1 distance in the feature's unit; 0 for identical distributions.")
    w1_over_std: float = Field(description="W1 divided by the reference's standard deviation; ≲ 0.05 is close "
                                           "for samples of a few thousand rows, larger values mark a mismatch.")
    ks: float = Field(description="Kolmogorov–Smirnov statistic (largest CDF difference, 0 to 1; small is good).")
    ks_p: float = Field(description="KS p-value: small (< 0.01) means the samples differ significantly.")
    chi2_ndf: float = Field(description="χ²/ndf of the two histograms on common equal-population bins; ≈ 1 "
                                        "when they agree within statistics.")
    reference_mean: float = Field(description="Mean of the reference, in the feature's unit.")
    candidate_mean: float = Field(description="Mean of the candidate, in the feature's unit.")


class SampleComparison(ToolResult):
    """Per-feature distances, classifier AUCs and FPD/KPD between a candidate and a reference sample."""

    table: Artifact = Field(description="Table artifact distances.parquet: one row per feature (w1, w1_over_std, "
                                        "ks, ks_p, chi2, ndf, chi2_ndf, means and standard deviations).")
    plot: Artifact = Field(description="Plot artifact plot.png / plot.pdf: reference vs candidate histograms with "
                                       "ratio panels, for up to 12 features (the 12 with the largest W1/σ when "
                                       "there are more).")
    kind: str = Field(description="What was compared: showers, table, jets or events.")
    n_reference: int = Field(description="Reference rows used (after skipping rows with missing features and "
                                         "subsampling to max_rows).")
    n_candidate: int = Field(description="Candidate rows used.")
    n_reference_skipped: int = Field(description="Reference rows skipped because a feature was missing there "
                                                 "(e.g. jets.pt[0] in an event without jets).")
    n_candidate_skipped: int = Field(description="Candidate rows skipped for a missing feature.")
    classifier_auc_gbdt: float = Field(description="Held-out ROC AUC of a gradient-boosted tree separating "
                                                   "candidate from reference: 0.5 = indistinguishable, 1 = fully "
                                                   "separable; below ~0.55 is very good for a generator.")
    classifier_auc_gbdt_err: float = Field(description="Standard error of classifier_auc_gbdt (Hanley–McNeil).")
    classifier_auc_mlp: float = Field(description="Held-out ROC AUC of a neural network (MLP) separating the "
                                                  "samples: 0.5 = indistinguishable, 1 = fully separable.")
    classifier_auc_mlp_err: float = Field(description="Standard error of classifier_auc_mlp (Hanley–McNeil).")
    n_classifier_test: int = Field(description="Held-out rows per sample the AUCs were measured on.")
    fpd: float = Field(description="Fréchet physics distance (arXiv:2211.10295) on the features, scaled by the "
                                   "reference's max |value|, extrapolated to infinite samples: 0 = same means and "
                                   "covariances; compare only values computed on the same features.")
    fpd_err: float = Field(description="Uncertainty of fpd (error of the extrapolated intercept).")
    kpd: float = Field(description="Kernel physics distance: unbiased MMD² with a polynomial kernel, median over "
                                   "batches; ≈ 0 (may be slightly negative) for the same distribution.")
    kpd_err: float = Field(description="Uncertainty of kpd (half the 16–84 % spread over batches).")
    worst_feature: str = Field(description="The feature with the largest W1 / reference std: look at it first.")
    worst_w1_over_std: float = Field(description="Its W1 / reference std.")
    features: list[FeatureComparison] = Field(description="One entry per feature, in the order compared.")

    def observation(self) -> str:
        """Headline numbers first, then the features worst first: the full JSON of many features would be cut."""
        head = (f"Artifacts: {self.table.id} (table): {self.table.summary}; {self.plot.id} (plot): "
                f"{self.plot.summary}. {self.kind}: n_reference={self.n_reference}, n_candidate="
                f"{self.n_candidate} (skipped "
                f"{self.n_reference_skipped}/{self.n_candidate_skipped}); classifier_auc_gbdt="
                f"{self.classifier_auc_gbdt:.4f}±{self.classifier_auc_gbdt_err:.4f}, classifier_auc_mlp="
                f"{self.classifier_auc_mlp:.4f}±{self.classifier_auc_mlp_err:.4f} (0.5 = indistinguishable); "
                f"fpd={self.fpd:.4g}±{self.fpd_err:.2g}; kpd={self.kpd:.4g}±{self.kpd_err:.2g}; worst_feature="
                f"{self.worst_feature} (w1_over_std={self.worst_w1_over_std:.3g}). Features, worst first "
                "(w1 [unit], w1_over_std, ks_p, chi2_ndf): ")
        ranked = sorted(self.features, key=lambda f: -f.w1_over_std)
        return head + "; ".join(f"{f.name}: {f.w1:.3g}{' ' + f.unit if f.unit else ''}, {f.w1_over_std:.3g}, "
                                f"{f.ks_p:.2g}, {f.chi2_ndf:.3g}" for f in ranked)


@tool(category="generate", version="1")
def compare_samples(
    reference: Annotated[SampleRef, Field(description="Id of the reference sample (e.g. full simulation): a "
                                                      "showers, table, jets or events artifact.")],
    candidate: Annotated[SampleRef, Field(description="Id of the sample to validate (e.g. generator output), of "
                                                      "the same kind as the reference (a table may face jets or "
                                                      "events when features are given).")],
    features: Annotated[list[str] | None, Field(json_schema_extra={"x-derived": True}, max_length=64, description=(
        "What to compare. Tables, jets, events: expressions with one value per row, e.g. ['jets.pt[0]', "
        "'jets.mass[0]', 'jets.tau32[0]', 'len(particles)', 'm_hat_gev']. Showers: observable names, e.g. "
        "['energy_sum_mev', 'cog_z_mm', 'n_hits', 'layer_energy_mev_05', 'log10_cell_energy_mev']. None: "
        "jets → leading-jet pt, eta, mass, tau21, tau32, msd, n_constituents; tables → common numeric "
        "columns; events → common numeric columns and collection sizes; showers → every observable."))] = None,
    reference_label: Annotated[
        str, Field(min_length=1, max_length=60, description="Legend name of the reference, e.g. 'Geant4'.")
    ] = "reference",
    candidate_label: Annotated[
        str, Field(min_length=1, max_length=60, description="Legend name of the candidate, e.g. 'CaloFlow'.")
    ] = "candidate",
    hit_threshold_mev: Annotated[float, Field(ge=0, le=1e6, description="Showers only: a cell counts as a hit "
                                              "(n_hits, cell spectrum) above this energy in MeV; 0 counts every "
                                              "deposit.")] = 0.0,
    n_bins: Annotated[int, Field(ge=5, le=200, description="Bins per feature for χ²/ndf and the plot.")] = 30,
    max_rows: Annotated[int, Field(ge=MIN_ROWS_PER_CLASS, le=2_000_000, description="At most this many rows "
                                   "of each sample are used (a seeded random subsample).")] = 100_000,
    seed: Annotated[int, Field(description="Random seed for subsampling, the split, the classifiers and "
                                           "FPD/KPD batches; same seed, same numbers.")] = 0,
    *,
    ctx: ToolContext,
) -> SampleComparison:
    """Compare a candidate sample with a reference: per-feature W1, KS, χ², classifier AUC, FPD and KPD.

    The validation suite for generative surrogates (showers, jets, any table): reports how far each
    feature's distribution is from the reference, whether classifiers can tell the samples apart (AUC
    0.5 = indistinguishable), and the Fréchet/kernel physics distances, with a table and ratio plots.
    """
    ref_artifact, cand_artifact = ctx.artifact(reference, "reference"), ctx.artifact(candidate, "candidate")
    features = list(dict.fromkeys(features)) if features else None
    with ctx.progress("compare samples", total=4, unit="steps") as bar:
        ref, cand = load_pair(ref_artifact, cand_artifact, features, hit_threshold_mev)
        _check_usable(ref, cand, reference, candidate, features)
        rng = np.random.default_rng(seed)
        ref, cand = _subsample(ref, max_rows, rng), _subsample(cand, max_rows, rng)
        bar.advance()
        distances = _distances(ref, cand, n_bins)
        bar.advance()
        scores = classifier_test(ref.values, cand.values, seed)
        bar.advance()
        fpd_value, kpd_value = fpd(ref.values, cand.values, seed=seed), kpd(ref.values, cand.values, seed=seed)
        bar.advance()
    summary = {
        "kind": ref_artifact.kind, "n_reference": len(ref.values), "n_candidate": len(cand.values),
        "n_reference_skipped": ref.n_skipped, "n_candidate_skipped": cand.n_skipped,
        "classifier_auc_gbdt": scores["gbdt"].auc, "classifier_auc_gbdt_err": scores["gbdt"].auc_err,
        "classifier_auc_mlp": scores["mlp"].auc, "classifier_auc_mlp_err": scores["mlp"].auc_err,
        "n_classifier_test": scores["gbdt"].n_test,
        "fpd": fpd_value[0], "fpd_err": fpd_value[1], "kpd": kpd_value[0], "kpd_err": kpd_value[1],
    }
    return _write(ctx, ref, cand, distances, summary, (reference_label, candidate_label), n_bins,
                  (ref_artifact, cand_artifact))


def _check_usable(ref: Sample, cand: Sample, reference: str, candidate: str, features: list[str] | None) -> None:
    if not ref.names:
        raise ToolInputError.for_param(
            "compare_samples", "features", features, "holds no per-shower observable; the classifiers and FPD/KPD "
            "need at least one, e.g. add 'energy_sum_mev' (or leave features unset for all).")
    for sample, param, value in ((ref, "reference", reference), (cand, "candidate", candidate)):
        if len(sample.values) < MIN_ROWS_PER_CLASS:
            skipped = f" ({sample.n_skipped:,} more skipped for missing features)" if sample.n_skipped else ""
            raise ToolInputError.for_param(
                "compare_samples", param, value, f"has {len(sample.values):,} usable rows{skipped}; the classifier "
                f"test needs at least {MIN_ROWS_PER_CLASS} per sample to hold rows out for testing. Use a larger "
                "sample.")


def _subsample(sample: Sample, max_rows: int, rng: np.random.Generator) -> Sample:
    """At most ``max_rows`` rows (and at most _MAX_POOLED pooled values), drawn without replacement."""
    values = sample.values
    if len(values) > max_rows:
        values = values[np.sort(rng.choice(len(values), max_rows, replace=False))]
    pooled = {name: v[rng.choice(len(v), _MAX_POOLED, replace=False)] if len(v) > _MAX_POOLED else v
              for name, v in sample.pooled.items()}
    return Sample(sample.names, sample.units, values, pooled, sample.n_skipped)


def _distances(ref: Sample, cand: Sample, n_bins: int) -> list[tuple[str, str, bool, FeatureDistances]]:
    """(name, unit, pooled, distances) per feature, then per pooled distribution."""
    found = [(name, unit, False, feature_distances(ref.values[:, i], cand.values[:, i], n_bins))
             for i, (name, unit) in enumerate(zip(ref.names, ref.units, strict=True))]
    for name, values in ref.pooled.items():
        found.append((name, "log10(E/MeV)", True, feature_distances(values, cand.pooled[name], n_bins)))
    return found


def _write(ctx: ToolContext, ref: Sample, cand: Sample, distances: list[tuple[str, str, bool, FeatureDistances]],
           summary: dict[str, Any], labels: tuple[str, str], n_bins: int,
           artifacts: tuple[Artifact, Artifact]) -> SampleComparison:
    rows = [FeatureComparison(name=name, unit=unit, pooled=pooled, w1=d.w1, w1_over_std=d.w1_over_std, ks=d.ks,
                              ks_p=d.ks_p, chi2_ndf=d.chi2_ndf, reference_mean=d.reference_mean,
                              candidate_mean=d.candidate_mean) for name, unit, pooled, d in distances]
    worst = max(rows, key=lambda row: row.w1_over_std)
    meta = {"reference": artifacts[0].id, "candidate": artifacts[1].id, "labels": list(labels), "n_bins": n_bins,
            "features": [row.name for row in rows], **summary}
    table = _write_table(ctx, ref, cand, distances, meta, labels)
    plot = _write_plot(ctx, ref, cand, rows, summary, labels, n_bins, meta)
    return SampleComparison(table=table, plot=plot, features=rows, worst_feature=worst.name,
                            worst_w1_over_std=worst.w1_over_std, **summary)


def _write_table(ctx: ToolContext, ref: Sample, cand: Sample, distances: list[tuple[str, str, bool, FeatureDistances]],
                 meta: dict[str, Any], labels: tuple[str, str]) -> Artifact:
    import awkward as ak

    from physagent.tools._io import write_parquet

    counts = [(len(ref.pooled[n]), len(cand.pooled[n])) if pooled else (len(ref.values), len(cand.values))
              for n, _, pooled, _ in distances]
    columns: dict[str, Any] = {
        "feature": [n for n, *_ in distances], "unit": [u for _, u, *_ in distances],
        "pooled": np.array([p for _, _, p, _ in distances], dtype=bool),
        "n_reference": np.array([c[0] for c in counts], dtype=np.int64),
        "n_candidate": np.array([c[1] for c in counts], dtype=np.int64),
    }
    for key in FeatureDistances.__dataclass_fields__:
        columns[key] = np.array([getattr(d, key) for *_, d in distances],
                                dtype=np.int64 if key == "ndf" else np.float64)
    pending = ctx.new_artifact("table")
    write_parquet(ak.zip(columns, depth_limit=1), pending.directory / "distances.parquet")
    return pending.finish("distances.parquet", f"distances of {labels[1]} ({meta['candidate']}) from {labels[0]} "
                          f"({meta['reference']}) for {len(distances)} features", meta)


def _write_plot(ctx: ToolContext, ref: Sample, cand: Sample, rows: list[FeatureComparison], summary: dict[str, Any],
                labels: tuple[str, str], n_bins: int, meta: dict[str, Any]) -> Artifact:
    chosen = rows if len(rows) <= MAX_PANELS else sorted(
        sorted(rows, key=lambda row: -row.w1_over_std)[:MAX_PANELS], key=rows.index)
    panels = [(row.name, row.unit, *_values(ref, cand, row), f"W1/σ = {row.w1_over_std:.3f}, KS p = {row.ks_p:.2g}")
              for row in chosen]
    title = (f"{labels[1]} vs {labels[0]}: AUC GBDT {summary['classifier_auc_gbdt']:.3f} ± "
             f"{summary['classifier_auc_gbdt_err']:.3f}, MLP {summary['classifier_auc_mlp']:.3f} ± "
             f"{summary['classifier_auc_mlp_err']:.3f}; FPD {summary['fpd']:.3g} ± {summary['fpd_err']:.2g}")
    figure = draw_comparison(panels, labels, title, n_bins)
    pending = ctx.new_artifact("plot")
    save_comparison(figure, pending.directory)
    return pending.finish("plot.png", f"{labels[1]} vs {labels[0]}: histograms and ratios of {len(panels)} "
                          f"feature(s)", meta | {"plotted": [row.name for row in chosen]})


def _values(ref: Sample, cand: Sample, row: FeatureComparison) -> tuple[np.ndarray, np.ndarray]:
    if row.pooled:
        return ref.pooled[row.name], cand.pooled[row.name]
    index = ref.names.index(row.name)
    return ref.values[:, index], cand.values[:, index]
