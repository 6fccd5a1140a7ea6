r"""physagent's agent: LLM backends, the tool-calling loop, grounded answers, sessions.

>>> from agent import Assistant
>>> record = Assistant().ask("Generate 500 ttbar events and tell me the cross-section")  # doctest: +SKIP
"""

from agent.backends import BackendError, ChatBackend, ScriptedBackend, get_backend
from agent.events import AgentEvent
from agent.loop import Assistant
from agent.record import AgentRecord

__all__ = ["AgentEvent", "AgentRecord", "Assistant", "BackendError", "ChatBackend", "ScriptedBackend", "get_backend"]
