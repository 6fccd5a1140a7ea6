r"""Tagger kinds, their inputs and their architectures by size — importable without torch.

Sizes: ``tiny`` (tests, quick looks), ``small`` (the default: minutes on two CPU cores), ``large`` (the
published architectures: ParT arXiv:2202.03772, ParticleNet arXiv:1902.08570, PFN arXiv:1810.05165).
The trigger kinds (:data:`TRIGGER_KINDS`, for hls4ml FPGA export) are small by design: ``mlp`` small is the
hls4ml jet-tagging benchmark's 64-32-32 network (arXiv:1804.06913); ``deepsets`` follows the Level-1
Deep Sets taggers (arXiv:2402.01876). The deepsets architecture gains ``n_particles`` (the dataset's
constituent count) at training time: its average pooling spans all particle slots.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["ARCHITECTURES", "INPUT_NAMES", "JET_LEVEL_KINDS", "MODEL_KINDS", "REFERENCES", "TRIGGER_KINDS",
           "ModelKind", "Size"]

ModelKind = Literal["part", "particlenet", "pfn", "efn", "bdt", "mlp", "deepsets"]
Size = Literal["tiny", "small", "large"]
MODEL_KINDS = ("part", "particlenet", "pfn", "efn", "bdt", "mlp", "deepsets")
TRIGGER_KINDS: tuple[str, ...] = ("mlp", "deepsets")  # kinds hls4ml can take
JET_LEVEL_KINDS = ("bdt", "mlp")  # kinds reading the jet features (JET_FEATURES), not the constituents
INPUT_NAMES: dict[str, tuple[str, ...]] = {
    "part": ("x", "v", "mask"), "particlenet": ("points", "x", "mask"), "pfn": ("x", "mask"),
    "efn": ("points", "v", "mask"), "mlp": ("jet",), "deepsets": ("x",),
}
REFERENCES = {"part": "arXiv:2202.03772", "particlenet": "arXiv:1902.08570", "pfn": "arXiv:1810.05165",
              "efn": "arXiv:1810.05165", "bdt": "scikit-learn HistGradientBoostingClassifier",
              "mlp": "arXiv:1804.06913 (hls4ml jet-tagging MLP)",
              "deepsets": "arXiv:1703.06114 (Deep Sets); arXiv:2402.01876 (Level-1 Deep Sets jet tagging)"}
ARCHITECTURES: dict[str, dict[str, dict[str, Any]]] = {
    "part": {
        "tiny": {"embed_dims": [32, 32], "pair_embed_dims": [16, 16], "num_heads": 2, "num_layers": 1,
                 "num_cls_layers": 1},
        "small": {"embed_dims": [64, 64, 64], "pair_embed_dims": [32, 32, 32], "num_heads": 4, "num_layers": 2,
                  "num_cls_layers": 1},
        "large": {"embed_dims": [128, 512, 128], "pair_embed_dims": [64, 64, 64], "num_heads": 8,
                  "num_layers": 8, "num_cls_layers": 2},
    },
    "particlenet": {
        "tiny": {"conv_params": [[8, [16, 16, 16]], [8, [32, 32, 32]]], "fc_params": [[64, 0.1]]},
        "small": {"conv_params": [[8, [32, 32, 32]], [8, [64, 64, 64]]], "fc_params": [[128, 0.1]]},
        "large": {"conv_params": [[16, [64, 64, 64]], [16, [128, 128, 128]], [16, [256, 256, 256]]],
                  "fc_params": [[256, 0.1]]},
    },
    "pfn": {
        "tiny": {"phi_sizes": [32, 32, 32], "f_sizes": [32, 32]},
        "small": {"phi_sizes": [100, 100, 128], "f_sizes": [100, 100]},
        "large": {"phi_sizes": [100, 100, 256], "f_sizes": [100, 100, 100]},
    },
    "bdt": {
        "tiny": {"max_iter": 100, "max_leaf_nodes": 15, "learning_rate": 0.1},
        "small": {"max_iter": 300, "max_leaf_nodes": 31, "learning_rate": 0.1},
        "large": {"max_iter": 1000, "max_leaf_nodes": 63, "learning_rate": 0.05},
    },
    "mlp": {
        "tiny": {"hidden_sizes": [16, 16]},
        "small": {"hidden_sizes": [64, 32, 32]},
        "large": {"hidden_sizes": [64, 64, 32, 32]},
    },
    "deepsets": {
        "tiny": {"phi_sizes": [16, 16], "rho_sizes": [16]},
        "small": {"phi_sizes": [32, 32, 32], "rho_sizes": [32, 32]},
        "large": {"phi_sizes": [64, 64, 64], "rho_sizes": [64, 64]},
    },
}
ARCHITECTURES["efn"] = ARCHITECTURES["pfn"]
