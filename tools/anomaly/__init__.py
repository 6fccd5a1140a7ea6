r"""Anomaly detection: LHC-Olympics-style weakly supervised and unsupervised searches, and data-quality monitoring."""

# importing the modules registers their tools: make_anomaly_dataset (dataset); the DQM tools (monitor,
# monitoring_data); autoencoder_search, bump_hunt; cwola_hunt, cathode_search, reference_anomaly_classifier
from physagent.tools.anomaly import autoencoder, bump, cathode, cwola, dataset, monitor, monitoring_data, reference  # noqa: F401
