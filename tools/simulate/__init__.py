"""Event simulation: Pythia8 generation, jet clustering with substructure, a fast detector, calorimeter showers."""

from physagent.tools.simulate import detector, events, jets, showers  # noqa: F401  (registers the tools)
