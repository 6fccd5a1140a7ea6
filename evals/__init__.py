"""physagent evals (see ARCHITECTURE.md)."""
