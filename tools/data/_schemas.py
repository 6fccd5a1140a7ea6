r"""File schemas: NanoAOD and Delphes trees as our collections, and the inverse mapping for writing.

On read (``read_root(schema=...)``) every momentum is in GeV and collections get our names
(ours ← NanoAOD | Delphes):

- ``particles`` {px, py, pz, e, pid, charge} ← ``GenPart`` status 1 | ``Particle`` Status 1, or the EFlow objects
- ``partons`` {…, status, mother1, mother2} ← ``GenPart`` | ``Particle`` with 21 ≤ |status| ≤ 29
- ``jets``, ``fatjets``, ``genjets``, ``muons``, ``electrons``, ``photons``, ``taus`` {pt, eta, phi, mass, e, + the
  file's fields} ← ``Jet``, ``FatJet`` (msoftdrop → msd), ``GenJet``, ``Muon``, ``Electron``, ``Photon``, ``Tau``
  (Delphes: PT → pt, other fields lower-case); ``towers`` {pt = ET, eta, phi, e} ← Delphes ``Tower``
- ``met`` {pt, phi} ← ``MET_pt``, ``MET_phi`` | ``MissingET``; ``weight`` ← ``genWeight`` | ``Event.Weight`` (1.0
  when the file has none)

``mother1``/``mother2`` index the event's ``partons`` (−1: none). The unit rule of flat trees and tables is in
:mod:`tools.data._units`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from physagent.tools._errors import ToolInputError
from physagent.tools._kinematics import cartesian, polar
from physagent.tools._pdg import charges, hard_mothers

__all__ = [
    "DELPHES_RECO", "NANOAOD_RECO", "ParticlesFrom", "Schema", "check_fits", "delphes_layout", "detect_schema",
    "file_names", "from_delphes", "from_nanoaod", "plain_number", "to_delphes", "to_nanoaod",
]

Schema = Literal["auto", "nanoaod", "delphes", "flat"]
ParticlesFrom = Literal["auto", "truth", "eflow"]

NANOAOD_RECO = {"Jet": "jets", "FatJet": "fatjets", "GenJet": "genjets", "GenJetAK8": "genfatjets", "SubJet": "subjets",
                "Muon": "muons", "Electron": "electrons", "Photon": "photons", "Tau": "taus"}
DELPHES_RECO = {"Jet": "jets", "FatJet": "fatjets", "GenJet": "genjets", "Muon": "muons", "Electron": "electrons",
                "Photon": "photons", "Tower": "towers"}
_GENPART = ("pt", "eta", "phi", "mass", "pdgId", "status", "genPartIdxMother")
_PARTICLE = ("PID", "Status", "M1", "M2", "Charge", "Px", "Py", "Pz", "E")
_NANO_MARKERS = ("GenPart_pdgId", "Jet_pt", "Muon_pt", "Electron_pt", "FatJet_pt", "Photon_pt")
_DOTTED = re.compile(r"^([A-Za-z]\w*)\.([A-Za-z]\w*)$")
_DELPHES_MASS_GEV = {"Muon": 0.1056583755, "Electron": 0.00051099895, "Photon": 0.0}  # Delphes stores none
_HARD_FLAG = 1 << 7  # NanoAOD statusFlags bit 7: isHardProcess
_TOOL = "read_root"


# detection ---------------------------------------------------------------------------------------


def detect_schema(names: Iterable[str], tree_name: str) -> str:
    """'delphes', 'nanoaod' or 'flat' from a tree's (recursive) branch names."""
    names = set(names)
    groups = {m.group(1) for m in map(_DOTTED.match, names) if m}
    if groups and (tree_name.rsplit("/", 1)[-1] == "Delphes" or any(f"{g}_size" in names for g in groups)):
        return "delphes"
    if any(m in names and "n" + m.split("_")[0] in names for m in _NANO_MARKERS):
        return "nanoaod"
    return "flat"


def _looks_like(found: str, names: list[str]) -> str:
    if found == "nanoaod":
        return "a NanoAOD tree (" + ", ".join(n for n in names if n.startswith("n"))[:120] + " …)"
    if found == "delphes":
        return "a Delphes tree (" + ", ".join(sorted({n.split(".")[0] for n in names if "." in n}))[:120] + ")"
    return f"a flat tree with branches {', '.join(names[:8])}{' …' if len(names) > 8 else ''}"


def check_fits(schema: str, names: list[str], tree_name: str, path: str) -> str:
    """The schema to read with: ``schema`` itself, or the detected one for 'auto'; a misfit is an input error."""
    found = detect_schema(names, tree_name)
    if schema in ("auto", found):
        return found
    if schema == "flat":
        return "flat"
    expected = {"nanoaod": "NanoAOD collections such as nJet + Jet_pt, Jet_eta, … or nGenPart + GenPart_pdgId",
                "delphes": "Delphes branches such as Particle.PID, Particle.PT, Jet.PT with counters "
                           "Particle_size, Jet_size"}[schema]
    raise ToolInputError.for_param(
        _TOOL, "schema", schema, f"does not fit {path}: it expects {expected}, but the file is "
        f"{_looks_like(found, names)}. Pass schema='{found}' (or 'auto', which detects it).",
    )


def file_names(schema: str, wanted: list[str]) -> tuple[list[str], list[str]]:
    """A branch selection in the file's names (our names such as 'muons' work too), and the branches that
    come with it when the file has them (the weight; MET_phi with MET_pt)."""
    reco = NANOAOD_RECO if schema == "nanoaod" else DELPHES_RECO
    ours = {v: k for k, v in reco.items()}
    truth = "GenPart" if schema == "nanoaod" else "Particle"
    met = "MissingET" if schema == "delphes" else "MET_pt"
    ours |= {"particles": truth, "partons": truth, "met": met, "MET": met}
    names = list(dict.fromkeys(ours.get(name, name) for name in wanted))
    extras = ["genWeight", *(["MET_phi"] if "MET_pt" in names else [])] if schema == "nanoaod" else ["Event"]
    return names, [name for name in extras if name not in names]


def _missing_branch(schema: str, branch: str, have: Iterable[str], why: str) -> ToolInputError:
    return ToolInputError.for_param(
        _TOOL, "schema", schema, f"cannot read this file as {why}: branch {branch!r} is missing (the collection "
        f"has {', '.join(sorted(have)) or 'no branches'}). Pass schema='flat' to read the branches as they are.",
    )


def _require(schema: str, collection: str, record: Any, needed: Iterable[str], sep: str, why: str) -> None:
    import awkward as ak

    have = ak.fields(record)
    for name in needed:
        if name not in have:
            raise _missing_branch(schema, f"{collection}{sep}{name}", [f"{collection}{sep}{h}" for h in have], why)


# NanoAOD -------------------------------------------------------------------------------------------


def from_nanoaod(array: Any, schema: str) -> tuple[Any, list[str]]:
    """NanoAOD columns (grouped as ``Jet: var * {pt, …}`` by the TTree reader) → our collections [GeV]."""
    import awkward as ak

    columns: dict[str, Any] = {}
    met: dict[str, Any] = {}
    warnings: list[str] = []
    for name in ak.fields(array):
        value = array[name]
        if name == "GenPart":
            columns.update(_genpart(value, schema, warnings))
        elif name in NANOAOD_RECO:
            _require(schema, name, value, ("pt", "eta", "phi", "mass"), "_", "NanoAOD objects")
            columns[NANOAOD_RECO[name]] = _reco(value, {"msoftdrop": "msd"})
        elif name.startswith("MET_"):
            met[name[4:]] = value
        elif name == "genWeight":
            columns["weight"] = value
        else:
            columns[name] = value
    if met:
        _require(schema, "MET", ak.zip(met), ("pt", "phi"), "_", "NanoAOD missing ET")
        columns["met"] = ak.zip(met)
    return ak.zip(columns, depth_limit=1), warnings


def _genpart(gen: Any, schema: str, warnings: list[str]) -> dict[str, Any]:
    import awkward as ak

    _require(schema, "GenPart", gen, _GENPART, "_", "NanoAOD generator particles")
    px, py, pz, e = _cartesian(gen.pt, gen.eta, gen.phi, gen.mass)
    pid = ak.values_astype(gen.pdgId, np.int32)
    status = ak.values_astype(gen.status, np.int32)
    final = status == 1
    particles = ak.zip({"px": px, "py": py, "pz": pz, "e": e, "pid": pid, "charge": charges(pid)})[final]
    if len(particles) and not ak.any(abs(particles.pid) >= 100):
        warnings.append("NanoAOD GenPart is pruned (no final-state hadrons are kept): particles holds only the "
                        "stored leptons and photons, so cluster_jets on it is not a truth jet; use genjets.")
    hard = (abs(status) >= 21) & (abs(status) <= 29)
    mother1 = hard_mothers(status, ak.values_astype(gen.genPartIdxMother, np.int64) + 1, one_based=True)
    partons = ak.zip({"px": px[hard], "py": py[hard], "pz": pz[hard], "e": e[hard], "pid": pid[hard],
                      "status": status[hard], "mother1": mother1, "mother2": ak.full_like(mother1, -1)})
    return {"particles": particles, "partons": partons}


def _cartesian(pt: Any, eta: Any, phi: Any, mass: Any) -> tuple[Any, Any, Any, Any]:
    """(px, py, pz, E) as float32, computed in float64 so float32 files round-trip to rounding."""
    import awkward as ak

    f64 = [ak.values_astype(x, np.float64) for x in (pt, eta, phi, mass)]
    return tuple(ak.values_astype(x, np.float32) for x in cartesian(*f64))  # type: ignore[return-value]


def _reco(record: Any, renames: dict[str, str]) -> Any:
    """pt, eta, phi, mass first, then e, then the file's other fields (renamed where we have a name)."""
    import awkward as ak

    fields = {renames.get(name, name): record[name] for name in ak.fields(record)}
    if "mass" in fields:
        fields["e"] = _cartesian(fields["pt"], fields["eta"], fields["phi"], fields["mass"])[3]
    if {"tau1", "tau2", "tau3"} <= set(fields):
        fields.setdefault("tau21", _ratio(fields["tau2"], fields["tau1"]))
        fields.setdefault("tau32", _ratio(fields["tau3"], fields["tau2"]))
    first = [name for name in ("pt", "eta", "phi", "mass", "e") if name in fields]
    return ak.zip({name: fields[name] for name in [*first, *[n for n in fields if n not in first]]})


def _ratio(numerator: Any, denominator: Any) -> Any:
    import awkward as ak

    return ak.where(denominator > 0, numerator / ak.where(denominator > 0, denominator, 1), 0)


def to_nanoaod(array: Any) -> dict[str, Any]:
    """Our collections → NanoAOD-named columns (GenPart = partons then particles; statusFlags bit 7 on partons)."""
    import awkward as ak

    ours = {v: k for k, v in NANOAOD_RECO.items()}
    columns: dict[str, Any] = {}
    for name in ak.fields(array):
        value = array[name]
        if name in ("particles", "partons"):
            columns.setdefault("GenPart", _genpart_of(array))
        elif name in ours:
            columns[ours[name]] = _drop_derived(value, {"msd": "msoftdrop"})
        elif name == "met":
            columns.update({f"MET_{f}": value[f] for f in ak.fields(value)})
        else:
            columns["genWeight" if name == "weight" else name] = value
    return columns


def _drop_derived(record: Any, renames: dict[str, str]) -> Any:
    """Fields the reader recomputes (e; tau21/tau32 from tau1-3) are not written twice."""
    import awkward as ak

    names = set(ak.fields(record))
    derived = {"e"} | ({"tau21", "tau32"} if {"tau1", "tau2", "tau3"} <= names else set())
    return ak.zip({renames.get(n, n): record[n] for n in ak.fields(record) if n not in derived})


def _pt_eta_phi_m(px: Any, py: Any, pz: Any, e: Any) -> dict[str, Any]:
    """(pT, η, φ, m) as float32 from float32 Cartesian momenta, in float64; η = 0 along the beam."""
    import awkward as ak

    momenta = polar(*(ak.values_astype(x, np.float64) for x in (px, py, pz, e)))
    momenta["eta"] = ak.where(momenta["pt"] > 0, momenta["eta"], 0.0)
    return {k: ak.values_astype(v, np.float32) for k, v in momenta.items()}


def _genpart_of(array: Any) -> Any:
    import awkward as ak

    parts = []
    if "partons" in ak.fields(array):
        q = array.partons
        parts.append(ak.zip({**_pt_eta_phi_m(q.px, q.py, q.pz, q.e), "pdgId": ak.values_astype(q.pid, np.int32),
                             "status": ak.values_astype(q.status, np.int32),
                             "statusFlags": ak.values_astype(ak.full_like(q.pid, _HARD_FLAG), np.int32),
                             "genPartIdxMother": _mothers(q, "mother1")}))
    if "particles" in ak.fields(array):
        p = array.particles
        ones = ak.values_astype(ak.ones_like(p.pid), np.int32)
        parts.append(ak.zip({**_pt_eta_phi_m(p.px, p.py, p.pz, p.e), "pdgId": ak.values_astype(p.pid, np.int32),
                             "status": ones, "statusFlags": ones * 0, "genPartIdxMother": ones * -1}))
    return parts[0] if len(parts) == 1 else ak.concatenate(parts, axis=1)


def _mothers(partons: Any, name: str) -> Any:
    """A parton mother index (partons come first in GenPart/Particle, so it is unchanged), −1 if not stored."""
    import awkward as ak

    if name in ak.fields(partons):
        return ak.values_astype(partons[name], np.int32)
    return ak.values_astype(ak.full_like(partons.pid, -1), np.int32)


# Delphes ------------------------------------------------------------------------------------------


def plain_number(interpretation: Any) -> bool:
    """Whether uproot reads the branch as numbers (one per object), not TRef, bit masks or fixed arrays."""
    content = getattr(interpretation, "content", interpretation)
    dtype = getattr(content, "to_dtype", None)
    return type(content).__name__ == "AsDtype" and dtype is not None and dtype.shape == ()


def delphes_layout(branches: Iterable[tuple[str, Any]]) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Collection → (branch, field) pairs of the numeric ``X.F`` branches (plain numeric branches such as
    ``pt_hat_gev`` under their own name, field ''), and the branches skipped (TRef, fUniqueID/fBits, fixed-size
    arrays such as ``Jet.Tau[5]``); counters ``X_size`` and the TClonesArray parents are neither."""
    groups: dict[str, list[tuple[str, str]]] = {}
    skipped = []
    for name, interpretation in branches:
        match = _DOTTED.match(name)
        if match and match.group(2) not in ("fUniqueID", "fBits") and plain_number(interpretation):
            groups.setdefault(match.group(1), []).append((name, match.group(2)))
        elif "." in name or "[" in name:
            skipped.append(name)
        elif not name.endswith("_size") and plain_number(interpretation):
            groups[name] = [(name, "")]
    return groups, skipped


def from_delphes(groups: dict[str, dict[str, Any]], particles_from: str, schema: str) -> tuple[Any, list[str]]:
    """Delphes collections (collection → field → jagged array) → our collections [GeV]."""
    import awkward as ak

    plain = {name: fields[""] for name, fields in groups.items() if "" in fields}
    groups = {name: fields for name, fields in groups.items() if "" not in fields}
    for name, fields in groups.items():
        _check_counts(name, fields)
    columns: dict[str, Any] = {}
    source = _particle_source(groups, particles_from)
    if source == "truth":
        columns.update(_delphes_truth(groups["Particle"], schema))
    elif source == "eflow":
        columns["particles"] = _eflow_particles(groups, schema)
    for name, fields in groups.items():
        record = ak.zip(fields)
        if name in DELPHES_RECO:
            columns[DELPHES_RECO[name]] = _delphes_reco(name, record, schema)
        elif name == "MissingET":
            _require(schema, name, record, ("MET", "Phi"), ".", "Delphes missing ET")
            columns["met"] = ak.firsts(ak.zip({"pt": record.MET, "phi": record.Phi}))
        elif name == "Event" and "Weight" in fields:
            columns["weight"] = ak.fill_none(ak.firsts(fields["Weight"]), 1.0)
        elif name != "Particle" and not (source == "eflow" and name.startswith("EFlow")):
            columns[name] = ak.zip({f.lower(): v for f, v in fields.items()})
    return ak.zip({**columns, **plain}, depth_limit=1), []


def _check_counts(name: str, fields: dict[str, Any]) -> None:
    """Every branch of a collection must have one value per object; a mismatch is a broken or mixed file."""
    import awkward as ak

    reference = "PID" if "PID" in fields else next(iter(fields))
    if fields[reference].ndim < 2:
        return
    counts = ak.num(fields[reference])
    for field_name, values in fields.items():
        if not ak.all(ak.num(values) == counts):
            raise ToolInputError.for_param(
                _TOOL, "path", None, f"has an inconsistent Delphes collection {name}: branch "
                f"'{name}.{field_name}' has a different number of entries per event than '{name}.{reference}'. "
                f"Check the file, or read it with schema='flat' and branches naming one of them.",
            )


def _particle_source(groups: dict[str, Any], particles_from: str) -> str | None:
    eflow = [g for g in ("EFlowTrack", "EFlowPhoton", "EFlowNeutralHadron") if g in groups]
    if particles_from == "truth" and "Particle" not in groups:
        raise ToolInputError.for_param(
            _TOOL, "particles_from", "truth", f"needs the Delphes branch 'Particle' (generator particles), which "
            f"this file lacks; it has {', '.join(sorted(groups)) or 'no collections'}. "
            + ("Pass particles_from='eflow' to build particles from the energy-flow objects." if eflow else
               "Keep the Particle branch in the Delphes card, or read the reconstructed objects with "
               "particles_from='auto'."),
        )
    if particles_from == "eflow" and not eflow:
        raise ToolInputError.for_param(
            _TOOL, "particles_from", "eflow", "needs the Delphes branches EFlowTrack, EFlowPhoton or "
            f"EFlowNeutralHadron, which this file lacks; it has {', '.join(sorted(groups))}.",
        )
    if particles_from == "auto":
        return "truth" if "Particle" in groups else ("eflow" if eflow else None)
    return particles_from


def _delphes_truth(fields: dict[str, Any], schema: str) -> dict[str, Any]:
    import awkward as ak

    _require(schema, "Particle", ak.zip(fields), _PARTICLE, ".", "Delphes generator particles")
    f32 = {k: ak.values_astype(fields[k], np.float32) for k in ("Px", "Py", "Pz", "E")}
    pid = ak.values_astype(fields["PID"], np.int32)
    status = ak.values_astype(fields["Status"], np.int32)
    final, hard = status == 1, (abs(status) >= 21) & (abs(status) <= 29)
    momenta = {"px": f32["Px"], "py": f32["Py"], "pz": f32["Pz"], "e": f32["E"]}
    particles = ak.zip({**momenta, "pid": pid, "charge": ak.values_astype(fields["Charge"], np.int8)})[final]
    mothers = {name: hard_mothers(status, ak.values_astype(fields[m], np.int64) + 1, one_based=True)
               for name, m in (("mother1", "M1"), ("mother2", "M2"))}
    partons = ak.zip({**{k: v[hard] for k, v in momenta.items()}, "pid": pid[hard], "status": status[hard],
                      **mothers})
    return {"particles": particles, "partons": partons}


def _delphes_reco(name: str, record: Any, schema: str) -> Any:
    import awkward as ak

    if name == "Tower":
        _require(schema, name, record, ("ET", "Eta", "Phi", "E"), ".", "Delphes towers")
        return ak.zip({"pt" if f == "ET" else f.lower(): record[f] for f in ak.fields(record)})
    _require(schema, name, record, ("PT", "Eta", "Phi"), ".", "Delphes objects")
    fields = {{"PT": "pt"}.get(f, f.lower()): record[f] for f in ak.fields(record)}
    if "mass" not in fields and name in _DELPHES_MASS_GEV:
        fields["mass"] = ak.values_astype(ak.full_like(fields["pt"], _DELPHES_MASS_GEV[name]), np.float32)
    return _reco(ak.zip(fields), {})


def _eflow_particles(groups: dict[str, dict[str, Any]], schema: str) -> Any:
    """Tracks (PID, charge, mass from the PDG id) + photons (22) + neutral hadrons (130, massless towers)."""
    import awkward as ak

    parts = []
    for name, pid in (("EFlowTrack", None), ("EFlowPhoton", 22), ("EFlowNeutralHadron", 130)):
        if name not in groups:
            continue
        record = ak.zip(groups[name])
        pt_name = "PT" if name == "EFlowTrack" else "ET"
        _require(schema, name, record, (pt_name, "Eta", "Phi", *(("PID", "Charge") if pid is None else ())), ".",
                 "Delphes energy-flow objects")
        pids = ak.values_astype(record.PID if pid is None else ak.full_like(record.Eta, pid), np.int32)
        mass = _masses_gev(pids) if pid is None else ak.zeros_like(record.Eta)
        px, py, pz, e = _cartesian(record[pt_name], record.Eta, record.Phi, mass)
        charge = ak.values_astype(record.Charge if pid is None else ak.zeros_like(pids), np.int8)
        parts.append(ak.zip({"px": px, "py": py, "pz": pz, "e": e, "pid": pids, "charge": charge}))
    return parts[0] if len(parts) == 1 else ak.concatenate(parts, axis=1)


def _masses_gev(pids: Any) -> Any:
    """PDG masses of track hypotheses in GeV (charged pion for ids the tables do not know)."""
    import awkward as ak
    from particle import Particle

    flat = ak.to_numpy(ak.flatten(pids)).astype(np.int64)
    unique, inverse = np.unique(flat, return_inverse=True)
    table = np.array([_mass_mev(Particle, int(p)) for p in unique], dtype=np.float64) / 1000.0
    return ak.unflatten(table[inverse] if flat.size else np.zeros(0), ak.num(pids))


def _mass_mev(particle: Any, pid: int) -> float:
    try:
        mass = particle.from_pdgid(pid).mass
    except Exception:  # ParticleNotFound / InvalidParticle for ids outside the tables
        mass = None
    return float(mass) if mass is not None else 139.57039


def to_delphes(array: Any) -> dict[str, Any]:
    """Our collections → Delphes-named records (Particle = partons then particles; Event.Weight; MissingET)."""
    import awkward as ak

    ours = {v: k for k, v in DELPHES_RECO.items() if k != "Tower"}
    columns: dict[str, Any] = {}
    for name in ak.fields(array):
        value = array[name]
        if name in ("particles", "partons"):
            columns.setdefault("Particle", _particle_of(array))
        elif name in ours:
            columns[ours[name]] = _drop_derived(value, {"pt": "PT", "eta": "Eta", "phi": "Phi", "mass": "Mass"})
        elif name == "met":
            columns["MissingET"] = _one_each(ak.zip({"MET": value.pt, "Phi": value.phi}))
        elif name == "weight":
            columns["Event"] = _one_each(ak.zip({"Weight": ak.values_astype(value, np.float64)}))
        else:
            columns[name] = value
    return columns


def _one_each(records: Any) -> Any:
    """One object per event as a jagged (var) list, as Delphes stores Event and MissingET."""
    import awkward as ak

    return ak.unflatten(records, np.ones(len(records), dtype=np.int64))


def _particle_of(array: Any) -> Any:
    import awkward as ak

    parts = []
    for name in ("partons", "particles"):
        if name not in ak.fields(array):
            continue
        q = array[name]
        ones = ak.values_astype(ak.ones_like(q.pid), np.int32)
        is_parton = name == "partons"
        polar = _pt_eta_phi_m(q.px, q.py, q.pz, q.e)
        parts.append(ak.zip({
            "PID": ak.values_astype(q.pid, np.int32),
            "Status": ak.values_astype(q.status, np.int32) if is_parton else ones,
            "M1": _mothers(q, "mother1") if is_parton else -ones, "M2": _mothers(q, "mother2") if is_parton else -ones,
            "Charge": ak.values_astype(charges(q.pid) if is_parton else q.charge, np.int32),
            "Mass": polar["mass"], "E": q.e, "Px": q.px, "Py": q.py, "Pz": q.pz,
            "PT": polar["pt"], "Eta": polar["eta"], "Phi": polar["phi"],
        }))
    return parts[0] if len(parts) == 1 else ak.concatenate(parts, axis=1)
