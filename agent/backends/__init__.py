r"""LLM backends behind one interface (:class:`ChatBackend`), chosen by configuration, never by code edits.

``PHYSAGENT_LLM`` (or ``--backend``) selects one:

- ``embedded`` (default, 1.5B): Qwen2.5-Coder-Instruct GGUF in-process via llama.cpp (xllamacpp), offline;
  ``embedded:0.5b``, ``embedded:1.5b`` or ``embedded:/path/to/model.gguf`` choose the weights.
- ``openai``: any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, a gateway, OpenAI) from
  ``PHYSAGENT_OPENAI_BASE_URL``, ``PHYSAGENT_OPENAI_MODEL``, ``PHYSAGENT_OPENAI_API_KEY``;
  ``openai:<model>`` overrides the model.
- ``scripted:/path/script.json``: replays a JSON script of tool calls and answers (tests, demos of front
  ends without a model; see :meth:`ScriptedBackend.from_file`).
"""

from __future__ import annotations

import os

from physagent.agent.backends.base import BackendError, ChatBackend, ModelTurn, ToolCallRequest, Usage
from physagent.agent.backends.scripted import ScriptedBackend

__all__ = [
    "DEFAULT_BACKEND", "BackendError", "ChatBackend", "ModelTurn", "ScriptedBackend", "ToolCallRequest", "Usage",
    "get_backend",
]

DEFAULT_BACKEND = "embedded:1.5b"  # chosen on the eval suite: see the README


def get_backend(spec: str | None = None) -> ChatBackend:
    """The backend named by ``spec``, else ``$PHYSAGENT_LLM``, else the embedded default."""
    spec = (spec or os.environ.get("PHYSAGENT_LLM") or DEFAULT_BACKEND).strip()
    kind, _, option = spec.partition(":")
    if kind == "embedded":
        from physagent.agent.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(model=option or DEFAULT_BACKEND.partition(":")[2])
    if kind == "openai":
        from physagent.agent.backends.openai_compat import OpenAICompatibleBackend

        env = {**os.environ, "PHYSAGENT_OPENAI_MODEL": option} if option else None
        return OpenAICompatibleBackend.from_env(env)
    if kind == "scripted":
        return ScriptedBackend.from_file(option)
    raise BackendError(
        f"unknown backend {spec!r}. Use 'embedded', 'embedded:1.5b', 'embedded:/path/model.gguf' or 'openai' "
        "(set PHYSAGENT_LLM or pass --backend)."
    )
