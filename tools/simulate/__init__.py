"""Event simulation: Pythia8 generation, jet clustering with substructure, a fast detector."""

from physagent.tools.simulate import detector, events, jets  # noqa: F401  (registers the tools)
