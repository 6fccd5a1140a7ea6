"""Front ends over the tool registry: the CLI now; web UI, REST and MCP follow the same pattern."""
