r"""Cross-sections, √s and sample names of workspace artifacts, for luminosity weighting and legends.

An artifact's generator card is found by walking its ``metadata["source"]`` links (histogram → jets →
events → …) to the first artifact that states ``sigma_pb``. Units: σ in pb, integrated luminosity L
in fb⁻¹; 1 pb = 1000 fb is the literal :data:`PB_TO_FB` (hepunits' ``pb / fb`` is 999.9999999999999).

A luminosity-normalised event weight is ``w_i · σ · 1000 · L / Σ_j w_j`` (never σ/N: weighted LHE
samples have Σw ≠ N); when the weights already are σ-weights in pb (``weight_unit == "pb"``, merged
samples) it is ``w_i · 1000 · L``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext

__all__ = [
    "PB_TO_FB", "SampleInfo", "lineage", "process_label", "pt_hat_window", "sample_info", "sum_of_weights",
    "window_text", "windows",
]

PB_TO_FB = 1000.0
_MAX_HOPS = 16  # lineages are a few artifacts long; the bound only guards against a cycle
_PROCESS_LABELS = {
    "ttbar": r"$t\bar{t}$", "qcd_dijet": "QCD dijet", "w_jets": "W+jets", "z_jets": "Z+jets",
    "drell_yan_mumu": "Drell–Yan μμ", "higgs_gammagamma": "H → γγ", "wprime_to_xy": "W′ → XY",
    "custom": "custom process", "lhe": "LHE events",
}
_SETTING = re.compile(r"^\s*PhaseSpace:(pTHat|mHat)(Min|Max)\s*=\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class SampleInfo:
    """What the lineage of an artifact says about its sample (None where nothing says it)."""

    label: str
    sigma_pb: float | None
    sigma_err_pb: float | None
    sigma_from: str | None  # id of the artifact whose metadata holds σ
    sqrt_s_tev: float | None
    process: str | None
    weight_unit: str | None  # "pb" when the weights are σ-weights (merged samples)
    pt_hat_gev: tuple[float, float | None] | None  # (min, max) of the generator's p̂T window
    settings: tuple[str, ...] = ()  # the generator card's Pythia settings


def lineage(ctx: ToolContext, artifact: Artifact) -> list[Artifact]:
    """``artifact`` and the artifacts its ``source`` links lead to, nearest first."""
    chain = [artifact]
    while len(chain) < _MAX_HOPS:
        source = chain[-1].metadata.get("source")
        found = ctx.workspace.get_artifact(source) if isinstance(source, str) else None
        if found is None or found.id in {a.id for a in chain}:
            break
        chain.append(found)
    return chain


def sample_info(ctx: ToolContext, artifact: Artifact) -> SampleInfo:
    """σ, √s, process and a legend label ("Drell–Yan μμ, Pythia8, 13.6 TeV") from the lineage."""
    chain = lineage(ctx, artifact)
    card = next((a for a in chain if a.metadata.get("sigma_pb") is not None), None)
    meta = card.metadata if card is not None else {}
    sqrt_s = next((a.metadata["sqrt_s_tev"] for a in chain if a.metadata.get("sqrt_s_tev")), None)
    process = next((a.metadata["process"] for a in chain if a.metadata.get("process")), None)
    settings = tuple(str(line) for line in meta.get("pythia_settings") or [])
    window = pt_hat_window(list(settings))
    return SampleInfo(
        label=_label(chain, process, window, sqrt_s), sigma_pb=_float(meta.get("sigma_pb")),
        sigma_err_pb=_float(meta.get("sigma_err_pb")), sigma_from=card.id if card is not None else None,
        sqrt_s_tev=_float(sqrt_s), process=process, weight_unit=meta.get("weight_unit"), pt_hat_gev=window,
        settings=settings,
    )


def windows(settings: list[str]) -> dict[str, tuple[float, float | None]]:
    """The p̂T ('pTHat') and m̂ ('mHat') windows [min, max) in GeV set by Pythia settings; unset = [0, ∞).

    The last line for a setting wins, as in Pythia.
    """
    edges: dict[tuple[str, str], float] = {}
    for line in settings:
        match = _SETTING.match(str(line))
        if match:
            edges[(match.group(1), match.group(2))] = float(match.group(3))
    return {name: (edges.get((name, "Min"), 0.0), edges.get((name, "Max"))) for name in ("pTHat", "mHat")}


def pt_hat_window(settings: list[str]) -> tuple[float, float | None] | None:
    """The (min, max) p̂T window in GeV of Pythia settings, None when they set none."""
    if not any(_SETTING.match(str(line)) and "pTHat" in str(line) for line in settings):
        return None
    return windows(settings)["pTHat"]


def window_text(window: tuple[float, float | None] | None) -> str:
    """'p̂T 50–100 GeV', 'p̂T > 100 GeV', or '' for no cut."""
    if window is None or (window[0] <= 0.0 and window[1] is None):
        return ""
    low, high = window
    return f"p̂T > {low:g} GeV" if high is None else f"p̂T {low:g}–{high:g} GeV"


def process_label(process: str | None) -> str:
    return _PROCESS_LABELS.get(process or "", process or "sample")


def _label(chain: list[Artifact], process: str | None, window: Any, sqrt_s: Any) -> str:
    named = next((a.metadata["sample_label"] for a in chain if a.metadata.get("sample_label")), None)
    if named:
        return str(named)
    if process is None:
        path = next((a.metadata["source_path"] for a in chain if a.metadata.get("source_path")), None)
        return Path(str(path)).stem.removesuffix(".lhe") if path else chain[-1].id
    generator = "Pythia8" if any(a.metadata.get("pythia_settings") for a in chain) else ""
    parts = [process_label(process), window_text(window), generator, f"{sqrt_s:g} TeV" if sqrt_s else ""]
    return ", ".join(p for p in parts if p)


def sum_of_weights(path: Path, weight_field: str | None = "weight") -> tuple[float, int]:
    """(Σ w, number of rows) of a Parquet artifact; w = 1 when the column is missing or not asked for."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    n_rows = int(parquet.metadata.num_rows)
    if weight_field is None or weight_field not in parquet.schema_arrow.names:
        return float(n_rows), n_rows
    column = parquet.read(columns=[weight_field]).column(0)
    return float(column.to_numpy().astype("float64").sum()), n_rows


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
