r"""Data in and out: ROOT (NanoAOD, Delphes, flat), Parquet/CSV/HDF5 tables, LHE and HepMC3 event files,
histograms (luminosity-weighted), merged samples, paper-style plots and summary statistics.

Tools: ``read_root``, ``write_root`` (:mod:`tools.data.root`; layouts in :mod:`tools.data._schemas`),
``read_table`` (:mod:`tools.data.tables`), ``write_hepmc`` (:mod:`tools.data.hepmc`), ``read_calochallenge``
(:mod:`tools.data.calochallenge`; calorimeter showers, deposits in MeV), ``histogram``
(:mod:`tools.data.histograms`), ``merge_samples`` (:mod:`tools.data.merge`), ``export_histograms``
(:mod:`tools.data.export`), ``plot`` (:mod:`tools.data.plots`), ``summarize`` (:mod:`tools.data.summarize`).
Momenta, energies and masses are in GeV throughout (files in MeV are converted on read); cross-sections in pb.
"""

from physagent.tools.data import (  # noqa: F401  (registers the tools)
    calochallenge,
    export,
    hepmc,
    histograms,
    merge,
    plots,
    root,
    summarize,
    tables,
)
from physagent.tools.data.histograms import load_histogram

__all__ = ["load_histogram"]
