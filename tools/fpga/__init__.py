r"""FPGA export: trained taggers and the anomaly autoencoder as firmware projects, with what fixed point costs.

Tools: ``export_fpga`` (:mod:`tools.fpga.export`: a model → an hls4ml project, or conifer for a BDT, and its
bit-accurate C simulation), ``compare_fixed_point`` (:mod:`tools.fpga.compare`: float vs fixed point on a
dataset, max |Δ| and ΔAUC), ``scan_precision`` (:mod:`tools.fpga.scan`: the smallest ``ap_fixed<W,I>``
keeping |ΔAUC| below a threshold, with per-layer range profiles), ``synthesize_fpga``
(:mod:`tools.fpga.synthesize`: latency and resources from Vitis/Vivado HLS, where installed).

References: hls4ml, Duarte et al., arXiv:1804.06913; conifer, Summers et al., arXiv:2002.02534.
"""

from physagent.tools.fpga.compare import compare_fixed_point
from physagent.tools.fpga.export import export_fpga
from physagent.tools.fpga.scan import scan_precision
from physagent.tools.fpga.synthesize import synthesize_fpga

__all__ = ["compare_fixed_point", "export_fpga", "scan_precision", "synthesize_fpga"]
