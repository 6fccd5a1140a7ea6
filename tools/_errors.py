r"""One error family for every tool.

A message names the tool, what failed, the offending value, what is allowed and what to do next:
``generate_events: n_events=-5 must be greater than or equal to 1. Ask for a positive number of events.``
Front ends map these once: the CLI prints the message and exits non-zero, REST answers 4xx,
the agent feeds the message back to the model as an observation.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ToolAccessError",
    "ToolCancelledError",
    "ToolDependencyError",
    "ToolError",
    "ToolInputError",
    "ToolRuntimeError",
    "one_line",
]


class ToolError(Exception):
    """Base of every error a tool reports to its caller."""

    exit_code = 1


class ToolInputError(ToolError):
    """The caller asked for something invalid; nothing was run or written.

    ``tool``, ``param`` and ``value`` name what was wrong (None where it is not one parameter), so
    front ends point at the field without parsing the message.
    """

    exit_code = 2

    def __init__(self, message: str, *, tool: str | None = None, param: str | None = None,
                 value: Any = None) -> None:
        super().__init__(message)
        self.tool, self.param, self.value = tool, param, value

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword fields survive pickling (errors cross process-pool boundaries)
        return (_rebuild_input_error, (type(self), str(self), self.tool, self.param, self.value))

    @classmethod
    def for_param(cls, tool: str, param: str, value: Any, problem: str) -> ToolInputError:
        """Build ``tool: param=value problem`` — the one shape every input error takes."""
        return cls(f"{tool}: {param}={value!r} {problem}", tool=tool, param=param, value=value)


def _rebuild_input_error(kind: type[ToolInputError], message: str, tool: str | None, param: str | None,
                         value: Any) -> ToolInputError:
    return kind(message, tool=tool, param=param, value=value)


class ToolAccessError(ToolInputError):
    """The call names a host file outside the folders the tools may read (see :mod:`tools._paths`).

    An input error (CLI exit 2, nothing run), kept distinct so REST answers 403 rather than 422.
    """


class ToolRuntimeError(ToolError):
    """The inputs were valid but the work failed (a generator, a file, a library)."""


class ToolDependencyError(ToolError):
    """A capability needs software that is not installed or not usable on this machine."""


class ToolCancelledError(ToolError):
    """The caller cancelled a running tool; nothing was committed to the workspace."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """A library's complaint as one line for a message: ``Type: text`` with whitespace runs (newlines)
    collapsed and at most ``limit`` characters (uproot and pandas spread theirs over several lines)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
