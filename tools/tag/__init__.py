r"""Jet taggers: datasets from simulation, ParT / ParticleNet / PFN / BDT models, training and evaluation.

Tools: ``make_jet_dataset`` (:mod:`tools.tag.dataset`), ``train_tagger`` (:mod:`tools.tag.train`),
``evaluate_tagger`` (:mod:`tools.tag.evaluate`), ``apply_tagger`` (:mod:`tools.tag.apply`). Models:
Particle Transformer (arXiv:2202.03772) and ParticleNet (arXiv:1902.08570) from weaver-core, Particle and
Energy Flow Networks (arXiv:1810.05165), a gradient-boosted tree on jet substructure. Trained networks
are exported to ONNX and TorchScript (:mod:`tools.tag._export`).
"""

from physagent.tools.tag.apply import apply_tagger
from physagent.tools.tag.dataset import make_jet_dataset
from physagent.tools.tag.evaluate import evaluate_tagger
from physagent.tools.tag.train import train_tagger

__all__ = ["apply_tagger", "evaluate_tagger", "make_jet_dataset", "train_tagger"]
