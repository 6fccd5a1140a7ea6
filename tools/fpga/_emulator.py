r"""The bit-accurate C simulation of an hls4ml project, called through its compiled library.

``compile()`` builds ``firmware/<project>-<stamp>.so`` whose ``<project>_float(float *in, float *out)``
converts one event to the fixed-point input type, runs the HLS top function as plain C++ (the same
arbitrary-precision types synthesis uses) and converts the output back. hls4ml's ``predict`` does the same
with numpy pointer checks per call; here the function is called with raw addresses, which runs several
times faster for small networks. The project's weights are compiled in (``WriteWeightsTxt=False``), so the
library does not read files and works wherever the artifact lies.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Emulator"]


@dataclass
class Emulator:
    """A loaded hls4ml library for one input of ``input_size`` floats and one output of ``output_size``.

    ``channels_first_to_last``: the library takes (P, F) per event while the model takes (F, P).
    """

    library: Path
    project_name: str
    input_size: int
    output_size: int
    channels_first_to_last: bool = False

    def __post_init__(self) -> None:
        handle = ctypes.CDLL(str(self.library))
        self._function = getattr(handle, f"{self.project_name}_float")
        self._function.restype = None
        self._function.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Fixed-point outputs (n, output_size), float64, for inputs ``x`` (n, *input_shape) in the model's layout."""
        if self.channels_first_to_last:
            x = np.swapaxes(x, 1, 2)
        flat = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
        if flat.shape[1] != self.input_size:
            raise ValueError(f"{flat.shape[1]} inputs per event for a project that takes {self.input_size}")
        out = np.zeros((len(flat), self.output_size), dtype=np.float32)
        in_base, out_base = flat.ctypes.data, out.ctypes.data
        in_step, out_step = flat.strides[0], out.strides[0]
        for i in range(len(flat)):
            self._function(in_base + i * in_step, out_base + i * out_step)
        return out.astype(np.float64)
