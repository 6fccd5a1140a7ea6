r"""Pure readers of generator files — Les Houches (``.lhe``, ``.lhe.gz``) and HepMC3 — into event records.

Both return ``(events, metadata)``: an awkward array with, per event,

- ``particles {px, py, pz, e [GeV, float32], pid (int32), charge (int8, e)}``: the final state (status 1);
- ``partons {px, py, pz, e, pid, status, mother1, mother2}``: an LHE file's whole parton-level record (LHE
  statuses −1 incoming, 2 intermediate, 1 outgoing); a HepMC file's hard process (21 ≤ |status| ≤ 29).
  ``mother1``/``mother2`` index ``partons`` (−1 none); ``mother2`` only where it differs from ``mother1``;
- ``weight`` (float64): XWGTUP of the LHE event (pb under weighting strategy ±4), the first HepMC weight;

and metadata ``{format, n_events, sigma_pb, sigma_err_pb, sqrt_s_tev, beams, …}`` (σ in pb; None where the
file does not say). HepMC momenta in MeV are converted to GeV. The readers hold the whole file in memory:
they are for inspecting and analysing files of up to some ten thousand events.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._pdg import charges, hard_mothers, to_gev

__all__ = ["open_lhe", "read_hepmc", "read_lhe"]

_MOMENTA = ("px", "py", "pz", "e")


@contextmanager
def open_lhe(path: str | Path) -> Iterator[Any]:
    """A ``pylhe.LHEFile`` of a plain or gzipped file, closed on exit (``fromfile`` leaves it to the garbage
    collector when the events are not read to the end)."""
    import pylhe

    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as handle:
        yield pylhe.LHEFile.frombuffer(handle)


def read_lhe(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Events and metadata of a Les Houches event file (pylhe), see the module docstring."""
    with open_lhe(path) as lhe:
        return _read_lhe_events(lhe)


def _read_lhe_events(lhe: Any) -> tuple[Any, dict[str, Any]]:
    rows: dict[str, list[Any]] = {name: [] for name in (*_MOMENTA, "pid", "status", "mother1", "mother2")}
    counts, weights = [], []
    for event in lhe.events:
        for particle in event.particles:
            for name in _MOMENTA:
                rows[name].append(getattr(particle, name))
            rows["pid"].append(particle.id)
            rows["status"].append(particle.status)
            rows["mother1"].append(particle.mother1)
            rows["mother2"].append(particle.mother2)
        counts.append(len(event.particles))
        weights.append(event.eventinfo.weight)
    flat = {name: np.asarray(values) for name, values in rows.items()}
    mother1, mother2 = flat["mother1"].astype(np.int64) - 1, flat["mother2"].astype(np.int64) - 1  # 1-based → 0
    flat["mother1"], flat["mother2"] = mother1, np.where(mother2 == mother1, -1, mother2)
    events = _events(flat, np.asarray(counts, dtype=np.int64), flat["status"] == 1, np.ones_like(mother1, bool),
                     np.asarray(weights, dtype=np.float64))
    return events, _lhe_metadata(lhe.init, len(counts))


def _lhe_metadata(init: Any, n_events: int) -> dict[str, Any]:
    beam = init.initInfo
    return {
        "format": "lhe", "n_events": n_events,
        "sigma_pb": sum(float(proc.xSection) for proc in init.procInfo),
        "sigma_err_pb": math.sqrt(sum(float(proc.error) ** 2 for proc in init.procInfo)),
        "sqrt_s_tev": 2.0 * math.sqrt(float(beam.energyA) * float(beam.energyB)) / 1000.0,
        "beams": [int(beam.beamA), int(beam.beamB)], "weighting_strategy": int(beam.weightingStrategy),
        "weight_unit": "pb" if abs(int(beam.weightingStrategy)) == 4 else "1",
        "units": {"momenta": "GeV", "cross_section": "pb"},
    }


def read_hepmc(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Events and metadata of a HepMC3 (or HepMC2) file (pyhepmc), see the module docstring."""
    import pyhepmc

    rows: dict[str, list[np.ndarray]] = {name: [] for name in (*_MOMENTA, "pid", "status", "mother1", "mother2")}
    counts, weights, first = [], [], None
    with pyhepmc.open(str(path)) as file:
        for event in file:
            first = first or _hepmc_event_info(event)
            for name, values in _hepmc_columns(event).items():
                rows[name].append(values)
            counts.append(len(event.particles))
            weights.append(float(event.weights[0]) if len(event.weights) else 1.0)
    if first is None:
        raise ValueError(f"{path} holds no HepMC events")
    flat = {name: np.concatenate(values) for name, values in rows.items()}
    count_array = np.asarray(counts, dtype=np.int64)
    status = np.abs(flat["status"])
    hard = (status >= 21) & (status <= 29)
    flat["mother1"], flat["mother2"] = _hard_links(flat, count_array)
    events = _events(flat, count_array, flat["status"] == 1, hard, np.asarray(weights, dtype=np.float64))
    return events, first | {"format": "hepmc3", "n_events": len(counts)}


def _hepmc_columns(event: Any) -> dict[str, np.ndarray]:
    """One event's particles as columns in GeV, with the 1-based ids of their first and last parent (0: none)."""
    columns = {name: np.asarray(getattr(event.numpy.particles, name), dtype=np.float64) for name in _MOMENTA}
    if event.momentum_unit != event.momentum_unit.GEV:
        columns = {name: to_gev(values, "MeV") for name, values in columns.items()}
    mother1 = np.zeros(len(event.particles), dtype=np.int64)
    mother2 = np.zeros(len(event.particles), dtype=np.int64)
    for vertex in event.vertices:
        parents = [p.id for p in vertex.particles_in]
        if not parents:
            continue
        for child in vertex.particles_out:
            mother1[child.id - 1], mother2[child.id - 1] = parents[0], parents[-1]
    return columns | {"pid": np.asarray(event.numpy.particles.pid, dtype=np.int64),
                      "status": np.asarray(event.numpy.particles.status, dtype=np.int64),
                      "mother1": mother1, "mother2": mother2}


def _hepmc_event_info(event: Any) -> dict[str, Any]:
    """Cross-section, √s (from the status-4 beams) and units, from the first event."""
    status = np.asarray(event.numpy.particles.status)
    energy = np.asarray(event.numpy.particles.e, dtype=np.float64)[status == 4]
    if event.momentum_unit != event.momentum_unit.GEV:
        energy = to_gev(energy, "MeV")
    cross_section = event.cross_section
    return {
        "sigma_pb": float(cross_section.xsec()) if cross_section is not None else None,
        "sigma_err_pb": float(cross_section.xsec_err()) if cross_section is not None else None,
        "sqrt_s_tev": 2.0 * math.sqrt(energy[0] * energy[1]) / 1000.0 if len(energy) == 2 else None,
        "beams": [int(pid) for pid in np.asarray(event.numpy.particles.pid)[status == 4]],
        "units": {"momenta": "GeV", "cross_section": "pb"},
    }


def _hard_links(flat: dict[str, np.ndarray], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mother1/mother2 of every entry as indices among its event's hard entries (−1 for non-hard entries too)."""
    import awkward as ak

    status = ak.unflatten(flat["status"], counts)
    mother2 = flat["mother2"]
    first = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    target = np.abs(flat["status"][np.clip(first + mother2 - 1, 0, len(mother2) - 1)])
    distinct = (mother2 > 0) & (mother2 != flat["mother1"]) & (target >= 21) & (target <= 29)
    links = []
    for mothers in (flat["mother1"], np.where(distinct, mother2, 0)):
        on_hard = ak.to_numpy(ak.flatten(hard_mothers(status, ak.unflatten(mothers, counts), one_based=True)))
        full = np.full(len(mothers), -1, dtype=np.int64)
        hard = (np.abs(flat["status"]) >= 21) & (np.abs(flat["status"]) <= 29)
        full[hard] = on_hard
        links.append(full)
    return links[0], links[1]


def _events(flat: dict[str, np.ndarray], counts: np.ndarray, final: np.ndarray, parton: np.ndarray,
            weights: np.ndarray) -> Any:
    """Records ``particles``, ``partons``, ``weight`` from flat per-entry columns selected per event."""
    import awkward as ak

    event = np.repeat(np.arange(len(counts)), counts)

    def jagged(mask: np.ndarray, fields: dict[str, np.ndarray]) -> Any:
        per_event = np.bincount(event[mask], minlength=len(counts))
        return ak.zip({name: ak.unflatten(values[mask], per_event) for name, values in fields.items()})

    momenta = {name: flat[name].astype(np.float32) for name in _MOMENTA}
    pid = flat["pid"].astype(np.int32)
    particles = jagged(final, momenta | {"pid": pid, "charge": charges(pid)})
    partons = jagged(parton, momenta | {"pid": pid, "status": flat["status"].astype(np.int32),
                                        "mother1": flat["mother1"].astype(np.int32),
                                        "mother2": flat["mother2"].astype(np.int32)})
    return ak.zip({"particles": particles, "partons": partons, "weight": weights}, depth_limit=1)
