"""Front ends over one tool registry and one agent event stream: CLI, gradio web UI, REST (FastAPI), MCP."""
