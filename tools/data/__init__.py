"""Data in and out: ROOT, Parquet/CSV/HDF5 tables, histograms and plots."""
