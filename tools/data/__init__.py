r"""Data in and out: ROOT, Parquet/CSV/HDF5 tables, histograms, plots and summary statistics.

Tools: ``read_root``, ``write_root`` (:mod:`tools.data.root`), ``read_table``
(:mod:`tools.data.tables`), ``read_calochallenge`` (:mod:`tools.data.calochallenge`; calorimeter
showers, deposits in MeV), ``histogram`` (:mod:`tools.data.histograms`), ``plot``
(:mod:`tools.data.plots`), ``summarize`` (:mod:`tools.data.summarize`). Momenta, energies and
masses are in GeV throughout.
"""

from physagent.tools.data import (  # noqa: F401  (registers the tools)
    calochallenge, export, hepmc, histograms, merge, plots, root, summarize, tables,
)
from physagent.tools.data.histograms import load_histogram

__all__ = ["load_histogram"]
