r"""Dotted field paths into awkward arrays: ``jets.mass``, ``particles.pt``, ``pt_hat_gev``.

A path walks records (``jets`` → ``mass``). Collections of four-momenta (records with
``px, py, pz, e`` in GeV, e.g. ``particles``, ``partons``) also offer the derived kinematics

    pT = √(px² + py²) [GeV],  η = asinh(pz / pT),  φ = atan2(py, px),  m = √max(E² − |p|², 0) [GeV]

when those are not stored. Labels carry units: GeV for momenta, energies, masses and ``*_gev``
fields; none for η, φ, τ ratios and counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physagent.tools._kinematics import polar
from physagent.tools._pdg import pdg_label

__all__ = ["DERIVED", "field_label", "field_unit", "leaf_paths", "object_ordering", "resolve_field"]

DERIVED = ("pt", "eta", "phi", "mass")
_MOMENTUM = ("px", "py", "pz", "e")
_GEV = {"pt", "e", "mass", "msd", "px", "py", "pz", "m", "energy", "met"}
_QUANTITY = {
    "pt": "$p_{T}$", "eta": r"$\eta$", "phi": r"$\phi$", "mass": "mass", "msd": "soft-drop mass",
    "e": "energy", "px": "$p_{x}$", "py": "$p_{y}$", "pz": "$p_{z}$", "tau1": r"$\tau_{1}$",
    "tau2": r"$\tau_{2}$", "tau3": r"$\tau_{3}$", "tau21": r"$\tau_{21}$", "tau32": r"$\tau_{32}$",
    "n_constituents": "number of constituents", "pt_hat_gev": r"$\hat{p}_{T}$",
    "m_hat_gev": r"$\hat{m}$", "deta": r"$\Delta\eta$", "dphi": r"$\Delta\phi$",
}
_OBJECT = {"particles": "particle", "partons": "parton", "jets": "jet", "constituents": "constituent"}
_PID_NAMES = {11: "electron", 13: "muon", 15: "tau", 22: "photon", 211: "pion", 5: "b quark",
              6: "top quark", 21: "gluon", 23: "Z boson", 24: "W boson", 25: "Higgs boson"}
_ORDINALS = {0: "leading", 1: "subleading", 2: "third"}


def _pid_name(pid: int) -> str:
    """'muon' for the everyday ids, the PDG name in LaTeX ('$K^{+}$', '$\\tilde{\\chi}^{0}_{1}$') for the rest."""
    name = _PID_NAMES.get(abs(pid))
    if name is not None:
        return name
    label = pdg_label(abs(pid), latex=True)
    return f"|pid| = {abs(pid)}" if label.startswith("PDG ") else f"${label}$"


def has_momentum(node: Any) -> bool:
    """True when ``node`` is a record (or list of records) with px, py, pz, e."""
    import awkward as ak

    return set(_MOMENTUM) <= set(ak.fields(node))


def derived(node: Any, name: str) -> Any:
    """pt, eta, phi or mass of four-momentum records, computed in float64."""
    import awkward as ak

    # pT = 0 gives η = ±inf, dropped later
    return polar(*(ak.values_astype(node[c], np.float64) for c in _MOMENTUM))[name]


def leaf_paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted path to a numeric leaf, derived kinematics included."""
    import awkward as ak

    paths = []
    for name in ak.fields(node):
        child = node[name]
        if ak.fields(child):
            paths += leaf_paths(child, f"{prefix}{name}.")
        elif child.type.content.parameter("__array__") not in ("string", "bytestring"):
            paths.append(prefix + name)
    if has_momentum(node):
        paths += [prefix + name for name in DERIVED if name not in ak.fields(node)]
    return paths


def object_ordering(collection: Any) -> Any:
    """Indices sorting each event's objects by decreasing pT (stored order when there is no pT)."""
    import awkward as ak

    if "pt" in ak.fields(collection):
        pt = collection["pt"]
    elif has_momentum(collection):
        pt = derived(collection, "pt")
    else:
        return ak.local_index(collection, axis=1)
    return ak.argsort(pt, axis=1, ascending=False, stable=True)


def resolve_field(node: Any, path: str) -> Any | None:
    """The values at ``path`` below ``node`` (derived kinematics computed), or None if absent."""
    import awkward as ak

    for part in path.split("."):
        if part in ak.fields(node):
            node = node[part]
        elif part in DERIVED and has_momentum(node):
            node = derived(node, part)
        else:
            return None
    return None if ak.fields(node) else node


def field_unit(path: str) -> str:
    """'GeV' for momenta, energies, masses and ``*_gev`` fields; '' otherwise."""
    leaf = path.rsplit(".", 1)[-1]
    return "GeV" if leaf in _GEV or leaf.endswith("_gev") else ""


def field_label(path: str, object_index: int | None = None, abs_pid: list[int] | None = None) -> str:
    """An axis label with units, e.g. 'leading muon $p_{T}$ [GeV]' for ``particles.pt``."""
    parts = path.split(".")
    objects = [_OBJECT.get(p, p) for p in parts[:-1]]
    if objects and abs_pid:
        names = [_pid_name(p) for p in abs_pid]
        one_known = len(names) == 1 and not names[0].startswith("|pid|")
        objects[0] = names[0] if one_known else f"{objects[0]} ({', '.join(names)})"
    if objects and object_index is not None:
        objects.insert(0, _ORDINALS.get(object_index, f"{object_index + 1}th"))
    leaf = parts[-1]
    quantity = _QUANTITY.get(leaf, leaf.removesuffix("_gev").replace("_", " "))
    unit = field_unit(path)
    return " ".join([*objects, quantity]) + (f" [{unit}]" if unit else "")
