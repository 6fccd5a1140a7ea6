r"""Requests for abilities this product does not have, answered with what it can do instead.

A small model given "… with Sherpa rather than Pythia" or "push my model to the Hugging Face Hub" plans the
nearest tool call (Pythia events; nothing at all, with a made-up "will be pushed") instead of saying no. These
few abilities are outside every tool and the sandbox (which has no network), so the loop answers them itself,
before any model turn, with the reason and what would work:

- event generation with another generator (Sherpa, Herwig, MadGraph, POWHEG, Whizard, …) — unless the request
  hands over that generator's LHE file, which ``generate_events(process="lhe")`` showers;
- full detector simulation with Geant4;
- anything over the network: uploading or publishing (a model hub, Zenodo, GitHub), downloading from the web.
"""

from __future__ import annotations

import re

__all__ = ["missing_ability"]

_GENERATORS = r"sherpa|herwig(?:\+\+|7)?|madgraph(?:5(?:_amc@nlo)?)?|mg5(?:_amc)?|powheg(?:[- ]box)?|whizard|alpgen|" \
              r"amc@nlo|epos|hijing"
_GENERATING = re.compile(r"\b(?:generat|produc|simulat|make|run|shower|hadroni[sz])\w*", re.IGNORECASE)
_OTHER_GENERATOR = re.compile(rf"\b(?:with|using|in|via|through|by|run(?:ning)?)\s+(?:the\s+)?({_GENERATORS})\b|"
                              rf"\b({_GENERATORS})\b[^.]*\b(?:rather than|instead of)\s+pythia", re.IGNORECASE)
_LHE_GIVEN = re.compile(r"\.lhe\b|\blhe\b|\bles houches\b", re.IGNORECASE)
_GEANT = re.compile(r"\b(?:run|with|using|through|in|full)\s+(?:a\s+|the\s+)?(?:full\s+)?geant\s?4\b", re.IGNORECASE)
_PLACES = r"(?:the\s+|my\s+|a\s+)?(?:hugging\s?face|hf hub|model hub|hub\b|zenodo|github|gitlab|pypi|" \
          r"web(?!\s*(?:ui|interface|app|page))|internet|cloud|s3|dropbox|google drive|cern ?box)|https?://"
_UPLOAD = re.compile(rf"\b(?:push|upload|publish|post|deploy|share)\w*\b[^.]*\b(?:to|on|onto)\s+(?:{_PLACES})",
                     re.IGNORECASE)
_DOWNLOAD = re.compile(rf"\b(?:download|fetch|pull)\w*\b[^.]*(?:\bfrom\s+(?:{_PLACES})|\bopen ?data\b)|"
                       r"\b(?:read|open|load|use|get|take|analy[sz]e)\b[^.]*https?://", re.IGNORECASE)


def missing_ability(request: str) -> str | None:
    """The answer to a request for an ability no tool has, or None when the tools may serve it.

    >>> missing_ability("Generate 500 W+jets events with Herwig 7, MPI off")[:60]
    "I can't do this as asked: my event generator is Pythia 8 (ge"
    >>> missing_ability("Shower the MadGraph events in /data/zmm.lhe with Pythia") is None
    True
    """
    generator = _OTHER_GENERATOR.search(request)
    if generator and _GENERATING.search(request) and not _LHE_GIVEN.search(request):
        name = generator.group(1) or generator.group(2)
        return (f"I can't do this as asked: my event generator is Pythia 8 (generate_events); {name} is not "
                "available here. I can generate the same process with Pythia 8, or shower events made with another "
                f"generator if you give me its LHE file (generate_events with process='lhe').")
    if _GEANT.search(request):
        return ("I can't do this as asked: there is no Geant4 here. The detector model is a parametrised fast "
                "simulation (detector_response with the generic_lhc, ATLAS/CMS-like and ild_like cards); calorimeter "
                "showers come from simulate_showers.")
    if _UPLOAD.search(request):
        return ("I can't do this as asked: neither my tools nor the sandboxed code have network access, so I cannot "
                "upload or publish anything. Every artifact is a file in the workspace (`physagent artifacts "
                "show <id>` gives its path; models carry ONNX and TorchScript exports), which you can push yourself.")
    if _DOWNLOAD.search(request):
        return ("I can't do this as asked: neither my tools nor the sandboxed code have network access, so I cannot "
                "download anything. Download the files yourself and I can read local ROOT, Parquet, CSV, HDF5, LHE "
                "and HepMC files.")
    return None
