"""physagent agent (see ARCHITECTURE.md)."""
