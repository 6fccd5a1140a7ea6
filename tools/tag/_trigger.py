r"""Trigger taggers for FPGAs: the hls4ml-convertible network of a trained ``mlp`` or ``deepsets`` model.

:func:`trigger_network` gives the ``nn.Sequential`` that hls4ml's PyTorch frontend converts, returning two
logits (background, signal); :func:`trigger_input` the one float32 array it takes:

- ``mlp``: the jet features ``JET_FEATURES`` (mass, msd [GeV], τ1–τ3, τ21, τ32, n_constituents),
  standardised as (value − mean) / std with the training split's statistics (``card["jet_standardisation"]``),
  shape (n, J);
- ``deepsets``: the particle features ``x`` (n, F, P), channels first, exactly zero in padded slots. With
  hls4ml's default ``channels_last_conversion="full"`` its ``predict`` takes this same (n, F, P) array;
  with ``"internal"`` it wants (n, P, F) (both checked with hls4ml 1.3, io_parallel).

``card["trigger"]`` holds the input name and its per-jet shape (J,) or (F, P). The softmax of the logits'
second column is the score ``score_model`` gives. References: arXiv:1804.06913 (hls4ml jet tagging),
arXiv:1703.06114 (Deep Sets), arXiv:2402.01876 (Deep Sets at Level 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolInputError
from physagent.tools.tag._architectures import TRIGGER_KINDS
from physagent.tools.tag._features import JET_FEATURES, particle_feature_names
from physagent.tools.tag._inference import check_inputs_match, inputs_for, load_tagger

if TYPE_CHECKING:
    import torch

__all__ = ["TRIGGER_KINDS", "standardise_jets", "trigger_card", "trigger_input", "trigger_network"]

_WHY_NOT = {
    "bdt": "it is a boosted-tree ensemble, not a network",
    "part": "its attention over particle pairs and masks are not layers hls4ml converts",
    "particlenet": "its k-nearest-neighbour EdgeConv is not a layer hls4ml converts",
    "pfn": "its masked sum over particles is not a layer hls4ml converts",
    "efn": "its pT-weighted masked sum over particles is not a layer hls4ml converts",
}


def trigger_network(artifact: Artifact) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained network of a tagger model artifact of a TRIGGER_KIND, in eval mode, and its model card.

    The network takes ONE float32 tensor (the array :func:`trigger_input` returns) and returns 2 logits.

    Raises:
        ToolInputError: the model is not of a trigger kind (the message names the kind and why).
    """
    _check_kind(dict(artifact.metadata), "trigger_network", artifact.id)
    net, card = load_tagger(artifact)
    return net.layers.cpu().eval(), card


def trigger_input(card: dict[str, Any], jets: Any) -> np.ndarray:
    """The float32 array the trigger network of ``card`` takes for ``jets``.

    Args:
        card: the model card (``trigger_network``'s second value, or the artifact's metadata).
        jets: an awkward array of jet records (a dataset or flat jets, as read_dataset / apply_tagger read
            them); the event records of a jets artifact (a ``jets`` field per event) are flattened.

    Returns:
        Standardised jet features (n, J) for mlp; particle features x (n, F, P) for deepsets.

    Raises:
        ToolInputError: not a trigger kind, or the jets lack what the model was trained on.
    """
    kind = _check_kind(card, "trigger_input", card.get("model"))
    jets = _flat(jets)
    _check_jets(card, jets)
    features = card["features"]
    inputs = inputs_for(jets, features["n_constituents"], features["set"])
    if kind == "mlp":
        return standardise_jets(inputs.jet, card["jet_standardisation"])
    return inputs.x


def standardise_jets(jet: np.ndarray, standardisation: dict[str, Any]) -> np.ndarray:
    """(jet − mean) / std per feature in float32, as the mlp computes it before its first layer."""
    mean = np.asarray(standardisation["mean"], dtype=np.float32)
    std = np.asarray(standardisation["std"], dtype=np.float32)
    return ((np.asarray(jet, dtype=np.float32) - mean) / std).astype(np.float32)


def trigger_card(kind: str, model: Any, n_features: int, n_constituents: int) -> dict[str, Any]:
    """The model-card entries of a trigger kind: its input and shape, the mlp's standardisation."""
    if kind == "mlp":
        standardisation = {"features": list(JET_FEATURES), "mean": model.mean.cpu().tolist(),
                           "std": model.std.cpu().tolist()}
        return {"trigger": {"input": "jet", "input_shape": [len(JET_FEATURES)]},
                "jet_standardisation": standardisation}
    if kind == "deepsets":
        return {"trigger": {"input": "x", "input_shape": [n_features, n_constituents]}}
    return {}


def _check_kind(card: dict[str, Any], caller: str, model_id: Any) -> str:
    kind = card.get("model")
    if kind not in TRIGGER_KINDS:
        why = _WHY_NOT.get(str(kind), "it is not a trigger kind")
        raise ToolInputError.for_param(
            caller, "model", model_id, f"is a {kind!r} tagger, which hls4ml cannot convert: {why}. Only "
            f"{' and '.join(TRIGGER_KINDS)} taggers can; train one with train_tagger(model='mlp') (jet features) "
            "or train_tagger(model='deepsets') (particles).")
    return str(kind)


def _flat(jets: Any) -> Any:
    import awkward as ak

    fields = ak.fields(jets)
    return ak.flatten(jets.jets) if "jets" in fields and "constituents" not in fields else jets


def _check_jets(card: dict[str, Any], jets: Any) -> None:
    label = f"{len(jets)} jets"
    if len(jets) == 0:
        raise ToolInputError.for_param("trigger_input", "jets", label, "holds no jets. Pass at least one jet.")
    check_inputs_match(card, jets, "trigger_input", "jets", label)
    features = card["features"]
    if card["model"] == "mlp":
        trained = card["jet_standardisation"]["features"]
        now = list(JET_FEATURES)
    else:
        trained, now = features["particle"], particle_feature_names(features["set"])
    if trained != now:
        raise ToolInputError.for_param(
            "trigger_input", "jets", label, f"would give the features {now}, but the model was trained on "
            f"{trained}. Retrain the model with this version of train_tagger.")
