r"""physagent's agent: LLM backends, the tool-calling loop, grounded answers, sessions.

>>> from physagent.agent import Assistant
>>> record = Assistant().ask("Generate 500 ttbar events and tell me the cross-section")  # doctest: +SKIP
"""

from physagent.agent.backends import BackendError, ChatBackend, ScriptedBackend, get_backend
from physagent.agent.events import AgentEvent
from physagent.agent.loop import Assistant
from physagent.agent.record import AgentRecord

__all__ = ["AgentEvent", "AgentRecord", "Assistant", "BackendError", "ChatBackend", "ScriptedBackend", "get_backend"]
