r"""The agent session as a whole: export what it made as a reproduction script.

Tools: ``export_session`` (:mod:`tools.session.export`).
"""

from physagent.tools.session import export  # noqa: F401  (registers the tool)
from physagent.tools.session.export import SessionExport, export_session

__all__ = ["SessionExport", "export_session"]
