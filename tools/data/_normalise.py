r"""Cross-sections, √s and sample names of workspace artifacts, for luminosity weighting and legends.

An artifact's generator card is found by walking its ``metadata["source"]`` links (histogram → jets →
events → …) to the first artifact that states ``sigma_pb``. Units: σ in pb, integrated luminosity L
in fb⁻¹; 1 pb = 1000 fb is the literal :data:`PB_TO_FB` (hepunits' ``pb / fb`` is 999.9999999999999).

The p̂T and m̂ windows [min, max) in GeV are the numbers ``generate_events`` states on its card
(``pt_hat_min_gev``, ``pt_hat_max_gev``, ``m_hat_min_gev``, ``m_hat_max_gev``; None = not set).

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
    "PB_TO_FB", "SampleInfo", "Window", "card_windows", "lineage", "process_label", "sample_info", "sum_of_weights",
    "window_text",
]

Window = tuple[float, float | None]  # [min, max) in GeV, max None = no upper cut

PB_TO_FB = 1000.0
_MAX_HOPS = 16  # lineages are a few artifacts long; the bound only guards against a cycle
_PROCESS_LABELS = {
    "ttbar": r"$t\bar{t}$", "qcd_dijet": "QCD dijet", "w_jets": "W+jets", "z_jets": "Z+jets",
    "drell_yan_mumu": "Drell–Yan μμ", "higgs_gammagamma": "H → γγ", "wprime_to_xy": "W′ → XY",
    "custom": "custom process", "lhe": "LHE events",
}
# the card fields of each window, as generate_events writes them
_CARD_FIELDS = {"pTHat": ("pt_hat_min_gev", "pt_hat_max_gev"), "mHat": ("m_hat_min_gev", "m_hat_max_gev")}
# fallback for cards written before generate_events stated its windows as numbers
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
    pt_hat_gev: Window | None  # the generator's p̂T window, None when it set none
    windows_gev: dict[str, Window]  # 'pTHat' and 'mHat' windows; unset = [0, ∞)
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
    windows, window = card_windows(meta)
    return SampleInfo(
        label=_label(chain, process, window, sqrt_s), sigma_pb=_float(meta.get("sigma_pb")),
        sigma_err_pb=_float(meta.get("sigma_err_pb")), sigma_from=card.id if card is not None else None,
        sqrt_s_tev=_float(sqrt_s), process=process, weight_unit=meta.get("weight_unit"), pt_hat_gev=window,
        windows_gev=windows, settings=tuple(str(line) for line in meta.get("pythia_settings") or []),
    )


def card_windows(card: dict[str, Any]) -> tuple[dict[str, Window], Window | None]:
    """The 'pTHat' and 'mHat' windows of a generator card (unset = [0, ∞)), and its p̂T window or None if unset."""
    if not all(name in card for pair in _CARD_FIELDS.values() for name in pair):
        # a card written before generate_events stated its windows as numbers: read its Pythia settings
        return _setting_windows([str(line) for line in card.get("pythia_settings") or []])
    found = {key: (_float(card[low]) or 0.0, _float(card[high])) for key, (low, high) in _CARD_FIELDS.items()}
    pt_set = card["pt_hat_min_gev"] is not None or card["pt_hat_max_gev"] is not None
    return found, found["pTHat"] if pt_set else None


def _setting_windows(settings: list[str]) -> tuple[dict[str, Window], Window | None]:
    """:func:`card_windows` from ``PhaseSpace:pTHatMin = 50``-style lines; the last line for a setting wins."""
    edges: dict[tuple[str, str], float] = {}
    for line in settings:
        match = _SETTING.match(line)
        if match:
            edges[(match.group(1), match.group(2))] = float(match.group(3))
    found = {key: (edges.get((key, "Min"), 0.0), edges.get((key, "Max"))) for key in _CARD_FIELDS}
    return found, found["pTHat"] if any(key == "pTHat" for key, _ in edges) else None


def window_text(window: Window | None) -> str:
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
