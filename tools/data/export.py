r"""``export_histograms``: histogram artifacts → one ROOT file of TH1D/TH2D objects, through uproot.

Each histogram keeps its bin contents, its variances Σw² (ROOT's ``fSumw2``) and its under/overflow
bins, so ``uproot.open(path)[name].to_hist()`` gives the histogram back; axis labels (with units,
e.g. 'leading jet pT [GeV]') become the TAxis titles, the sample name the histogram title. The file is
byte-reproducible: the ROOT header clock and UUIDs are fixed from the content
(:mod:`tools.data._rootio`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from pydantic import Field

from physagent.tools._artifacts import Artifact, HistogramRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool

# private helpers of root.py, shared on purpose: one place decides how a ROOT file is made reproducible
from physagent.tools.data._rootio import reproducible_writes, uuid_from
from physagent.tools.data.histograms import load_histogram

__all__ = ["RootHistograms", "export_histograms"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RootHistograms(ToolResult):
    """A ROOT file of histograms (TH1D/TH2D)."""

    root: Artifact = Field(description="The ROOT file artifact (kind 'root'), 'histograms.root'.")
    names: list[str] = Field(description="Key of each histogram in the file, in the order given.")
    classes: list[str] = Field(description="ROOT class of each histogram: 'TH1D' or 'TH2D'.")


@tool(category="data")
def export_histograms(
    histograms: Annotated[
        list[HistogramRef], Field(min_length=1, max_length=50, description="Ids of 1 to 50 histogram artifacts.")
    ],
    names: Annotated[
        list[str] | None, Field(json_schema_extra={"x-derived": True}, description="Key of each histogram in "
                                "the ROOT file, e.g. 'h_mjj' (None: from the fields, e.g. 'jets_pt').")
    ] = None,
    *,
    ctx: ToolContext,
) -> RootHistograms:
    """Export histograms to a ROOT file as TH1D/TH2D, with variances and under/overflow.

    Returns the ROOT file artifact (histograms.root) and the key and class of every histogram in it.
    """
    import uproot

    artifacts = [ctx.artifact(h, "histograms") for h in histograms]
    keys = _check_names(names, histograms) if names is not None else default_names(artifacts)
    pending = ctx.new_artifact("root")
    target = pending.directory / "histograms.root"
    content = hashlib.sha256("".join(f"{k}\0{a.sha256}\n" for k, a in zip(keys, artifacts, strict=True)).encode())
    with reproducible_writes(), uproot.recreate(target, uuid_function=uuid_from(content.hexdigest())) as file:
        for key, artifact in zip(keys, artifacts, strict=True):
            file[key] = _titled(load_histogram(artifact.path), artifact)
    with uproot.open(target) as file:
        classes = [file[key].classname for key in keys]
    summary = f"{len(keys)} histogram(s) as {', '.join(sorted(set(classes)))} in histograms.root: {', '.join(keys)}"
    artifact = pending.finish(target.name, summary, {"histograms": histograms, "names": keys, "classes": classes})
    return RootHistograms(root=artifact, names=keys, classes=classes)


def default_names(artifacts: list[Artifact]) -> list[str]:
    """Keys from the fields ('jets.pt' → 'jets_pt', 2-D 'x_vs_y'); repeats get the histogram id appended."""
    stems = []
    for artifact in artifacts:
        fields = [artifact.metadata.get("field"), artifact.metadata.get("field_y")]
        text = "_vs_".join(str(f) for f in fields if f) or "h"
        if artifact.metadata.get("object_index") is not None:
            text += f"_{artifact.metadata['object_index']}"
        stems.append(_identifier(text))
    return [s if stems.count(s) == 1 else f"{s}_{a.id.split('-')[-1]}" for s, a in zip(stems, artifacts, strict=True)]


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_") or "h"
    return name if _NAME.match(name) else f"h_{name}"


def _check_names(names: list[str], histograms: list[str]) -> list[str]:
    if len(names) != len(histograms):
        raise ToolInputError.for_param(
            "export_histograms", "names", names, f"must have one entry per histogram ({len(histograms)}), "
            f"got {len(names)}. Give one key per histogram or leave names unset.")
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise ToolInputError.for_param(
            "export_histograms", "names", names, f"has keys that are not ROOT identifiers ({', '.join(bad)}): "
            "use letters, digits and '_', not starting with a digit, e.g. 'h_mjj'.")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ToolInputError.for_param(
            "export_histograms", "names", names, f"repeats {', '.join(twice)}; each key in a ROOT file must be "
            "unique. Give distinct names.")
    return list(names)


def _titled(filled: Any, artifact: Artifact) -> Any:
    """The histogram with the sample as its title (ROOT's fTitle), when the artifact names one."""
    sample = artifact.metadata.get("sample")
    if sample:
        filled.name = str(sample)  # uproot writes a Hist's name as fTitle
    return filled
