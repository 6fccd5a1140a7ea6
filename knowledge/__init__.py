"""physagent knowledge (see ARCHITECTURE.md)."""
