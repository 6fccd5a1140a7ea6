r"""Jet taggers: datasets from simulation, ParT / ParticleNet / PFN / BDT / trigger models, training and evaluation.

Tools: ``make_jet_dataset`` (:mod:`tools.tag.dataset`), ``train_tagger`` (:mod:`tools.tag.train`),
``evaluate_tagger`` (:mod:`tools.tag.evaluate`), ``apply_tagger`` (:mod:`tools.tag.apply`), ``scan_training``
(:mod:`tools.tag.scan`: a tagger's or generator's training over a grid of hyper-parameters, each point an
ordinary training call, on the Dask cluster when one is configured). Models:
Particle Transformer (arXiv:2202.03772) and ParticleNet (arXiv:1902.08570) from weaver-core, Particle and
Energy Flow Networks (arXiv:1810.05165), a gradient-boosted tree on jet substructure, and two trigger
networks hls4ml converts for FPGAs: an MLP on jet substructure (arXiv:1804.06913) and Deep Sets
(arXiv:2402.01876). Trained networks are exported to ONNX and TorchScript (:mod:`tools.tag._export`).

To score jets outside the tools: ``load_tagger(artifact)`` gives the model and its card,
``inputs_for(jets, n_constituents, feature_set)`` the model inputs, ``score_model(model, kind, inputs)``
the signal scores (:mod:`tools.tag._inference`); for a trigger model ``trigger_network(artifact)`` the
hls4ml-convertible network and ``trigger_input(card, jets)`` its input (:mod:`tools.tag._trigger`).
"""

from physagent.tools.tag._inference import inputs_for, load_tagger, score_model
from physagent.tools.tag._trigger import TRIGGER_KINDS, trigger_input, trigger_network
from physagent.tools.tag.apply import apply_tagger
from physagent.tools.tag.dataset import make_jet_dataset
from physagent.tools.tag.evaluate import evaluate_tagger
from physagent.tools.tag.scan import scan_training
from physagent.tools.tag.train import train_tagger

__all__ = ["TRIGGER_KINDS", "apply_tagger", "evaluate_tagger", "inputs_for", "load_tagger", "make_jet_dataset",
           "scan_training", "score_model", "train_tagger", "trigger_input", "trigger_network"]
