r"""Particle bookkeeping shared by every tool: which particles are invisible, charges and names from PDG ids,
hard-process mother links, (pT, η, φ, m) → Cartesian momenta and unit conversion to GeV.

Invisible means: no detector records a hit for it *and* jets are never built from it — neutrinos, sneutrinos,
neutralinos, the gravitino, dark-sector and hidden-valley invisibles. A truth jet holding an LSP would have a mass and
pT no measurement sees. Pythia's own ``isVisible`` is no substitute: it also says False for Z, W and Higgs bosons
and for ids it does not know; tests/test_pdg.py checks this set is exactly Pythia's invisible stable particles.
Charges and names come from the ``particle`` package (the PDG tables); units from ``hepunits``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["INVISIBLE_PIDS", "charges", "hard_daughters", "hard_mothers", "is_invisible", "pdg_label", "to_gev"]

# |PDG id|: ν_e ν_μ ν_τ ν_4; sneutrinos; χ̃⁰₁…₄; G̃; ν̃_R; dark-matter/hidden-sector ids 51–60; hidden valley
# (Pythia's HiddenValley ν_v, g_v, γ_v, q_v, π_v, ρ_v); KK graviton; heavy right-handed neutrinos
INVISIBLE_PIDS: frozenset[int] = frozenset({
    12, 14, 16, 18,
    1000012, 1000014, 1000016, 1000022, 1000023, 1000025, 1000035, 1000039, 2000012, 2000014,
    *range(51, 61),
    4900012, 4900014, 4900016, 4900021, 4900022, *range(4900101, 4900109), 4900111, 4900113,
    5000039, 5100039, 9900012, 9900014, 9900016,
})
_INVISIBLE_SORTED = np.array(sorted(INVISIBLE_PIDS), dtype=np.int64)
# ids outside the PDG tables of `particle` that generators produce: (name, LaTeX)
_BSM_NAMES = {
    1000022: ("~chi_10", r"\tilde{\chi}^{0}_{1}"), 1000023: ("~chi_20", r"\tilde{\chi}^{0}_{2}"),
    1000024: ("~chi_1+", r"\tilde{\chi}^{+}_{1}"), 1000039: ("~Gravitino", r"\tilde{G}"),
    1000006: ("~t_1", r"\tilde{t}_{1}"), 1000021: ("~g", r"\tilde{g}"),
}
_MAX_MOTHER_HOPS = 64  # a hard-process record is a few generations deep; a loop would be a corrupt record


def is_invisible(pid: Any) -> Any:
    """Element-wise: whether |pid| is invisible (numpy or awkward arrays, jagged or not)."""
    import awkward as ak

    if isinstance(pid, ak.Array):
        flat = ak.to_numpy(ak.ravel(pid))
        return ak.unflatten(is_invisible(flat), ak.num(pid)) if pid.ndim > 1 else ak.Array(is_invisible(flat))
    return np.isin(np.abs(np.asarray(pid, dtype=np.int64)), _INVISIBLE_SORTED)


def charges(pids: Any) -> Any:
    """Electric charge in units of e (int8) from PDG ids; ids the PDG tables do not know get 0."""
    import awkward as ak

    if isinstance(pids, ak.Array) and pids.ndim > 1:
        return ak.unflatten(charges(ak.to_numpy(ak.flatten(pids))), ak.num(pids))
    flat = np.asarray(pids, dtype=np.int64)
    unique, inverse = np.unique(flat, return_inverse=True)
    table = np.array([_three_charge(int(pid)) for pid in unique], dtype=np.int16)
    return (table[inverse] // 3).astype(np.int8).reshape(flat.shape)


def _three_charge(pid: int) -> int:
    from particle.pdgid import three_charge

    # generator-internal ids (≥ 9 000 000) are outside the PDG scheme: `particle` answers them wrongly
    if abs(pid) >= 9_000_000 and abs(pid) < 1_000_000_000:
        return 0
    value = three_charge(pid)
    return int(value) if value is not None else 0


def pdg_label(pid: int, latex: bool = False) -> str:
    """A readable name for a PDG id (``13`` → ``mu-``; LaTeX ``\\mu^{-}``); unknown ids read ``PDG 9000001``."""
    from particle import Particle
    from particle.particle.particle import ParticleNotFound

    try:
        found = Particle.from_pdgid(int(pid))
    except (ParticleNotFound, ValueError):
        names = _BSM_NAMES.get(abs(int(pid)))
        if names is None:
            return f"PDG {int(pid)}"
        name, latex_name = names
        if int(pid) < 0:  # the antiparticle of a charged state; neutral Majorana states keep their name
            name, latex_name = name.replace("+", "-"), latex_name.replace("+", "-")
        return latex_name if latex else name
    return str(found.latex_name if latex else found.name)


def hard_mothers(status: Any, mother1: Any, *, one_based: bool = False) -> Any:
    """For each hard-process entry (21 ≤ |status| ≤ 29) of each event, the index *among that event's hard entries*
    of its nearest hard ancestor along ``mother1`` (−1 if none), as a jagged int32 array of the hard entries.

    ``status`` and ``mother1`` are jagged over the full event record; ``mother1`` indexes that record (0 = Pythia's
    system entry, or "no mother" with ``one_based=True`` as in LHE/HEPEVT). Intermediate copies (recoil, shower
    status 4x–6x) are walked through, so a W's mother is the top even when Pythia recorded a copy in between.
    """
    import awkward as ak

    counts = ak.to_numpy(ak.num(status)).astype(np.int64)
    event = np.repeat(np.arange(len(counts)), counts)
    first = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    st = np.abs(ak.to_numpy(ak.flatten(status)).astype(np.int64))
    local_mother = ak.to_numpy(ak.flatten(mother1)).astype(np.int64) - (1 if one_based else 0)
    hard = (st >= 21) & (st <= 29)
    # Pythia's entry 0 is the system: mother 0 means none there, but is a real entry in one-based records
    has_mother = (local_mother >= (0 if one_based else 1)) & (local_mother < counts[event])
    entries = np.flatnonzero(hard)  # only hard entries need an answer: a full record is ~100× longer
    ancestor = np.where(has_mother[entries], first[entries] + local_mother[entries], -1)
    for _ in range(_MAX_MOTHER_HOPS):
        climbing = np.flatnonzero((ancestor >= 0) & ~hard[np.maximum(ancestor, 0)])
        if not climbing.size:
            break
        step_from = ancestor[climbing]
        ancestor[climbing] = np.where(has_mother[step_from], first[step_from] + local_mother[step_from], -1)
    found = (ancestor >= 0) & (ancestor != entries) & hard[np.maximum(ancestor, 0)]
    hard_rank = np.cumsum(hard) - 1
    n_hard = np.bincount(event[hard], minlength=len(counts))
    hard_first = np.concatenate([[0], np.cumsum(n_hard)[:-1]])
    mother = np.full(len(entries), -1, dtype=np.int64)
    mother[found] = hard_rank[ancestor[found]] - hard_first[event[entries[found]]]
    return ak.unflatten(mother.astype(np.int32), n_hard)


def hard_daughters(mother1: Any, mother2: Any) -> tuple[Any, Any]:
    """(daughter1, daughter2): for each hard-process record, the first and the last index (among the event's hard
    records) of the records naming it as ``mother1`` or ``mother2``, −1 for none; the inverse of
    :func:`hard_mothers` (a top's daughters are its b and W, an incoming parton's the produced pair)."""
    import awkward as ak

    counts = ak.to_numpy(ak.num(mother1)).astype(np.int64)
    offsets = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    first = np.full(int(counts.sum()), np.iinfo(np.int64).max)
    last = np.full(int(counts.sum()), -1)
    child = np.arange(int(counts.sum()))
    for mothers in (mother1, mother2):
        local = ak.to_numpy(ak.flatten(mothers)).astype(np.int64)
        has = local >= 0
        np.minimum.at(first, offsets[has] + local[has], child[has] - offsets[has])
        np.maximum.at(last, offsets[has] + local[has], child[has] - offsets[has])
    first[last < 0] = -1
    return (ak.unflatten(first.astype(np.int32), counts), ak.unflatten(last.astype(np.int32), counts))


def to_gev(values: Any, unit: Literal["GeV", "MeV", "TeV"]) -> Any:
    """``values`` given in ``unit`` expressed in GeV (hepunits' factors; MeV→GeV is exactly 1e-3)."""
    import hepunits

    factor = {"GeV": 1.0, "MeV": hepunits.MeV / hepunits.GeV, "TeV": hepunits.TeV / hepunits.GeV}[unit]
    return values if factor == 1.0 else values * factor
