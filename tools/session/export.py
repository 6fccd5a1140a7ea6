r"""``export_session``: the reproduction script of what an agent session made, as an artifact.

The script is what ``physagent export --session ID`` writes (:mod:`tools._provenance`): plain Python
that reruns, in a fresh workspace and with the cache off, every tool call that made one of the session's
artifacts — and the calls those needed, from whichever session made them — then checks each new
artifact's sha256 against the recorded one. Artifact ids are remapped in artifact parameters and inside
code (``run_python`` reading ``INPUTS["jet-…"]``). The calling session comes from the tool context
(``call_tool(..., session=...)``); with none (``physagent tools call``, REST, MCP) every artifact of the
workspace is covered. Calls of this tool are never replayed.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._provenance import NOT_REPLAYED, calls_for_export, render_script
from physagent.tools._registry import ToolResult, tool
from physagent.tools._workspace import CallRecord

__all__ = ["SessionExport", "export_session"]

_SCRIPT_NAME = "reproduce.py"


class SessionExport(ToolResult):
    """A reproduction script and what it covers."""

    script: Artifact = Field(description="The script (kind 'script'); run `python reproduce.py [WORKSPACE_DIR]`.")
    session: str | None = Field(description="The agent session exported; None: every artifact of the workspace.")
    n_calls: int = Field(description="Tool calls the script replays, calls of other sessions it needs included.")
    n_artifacts: int = Field(description="Artifacts it reproduces and checks by sha256.")
    tools: list[str] = Field(description="The tools of the replayed calls, in order.")

    def observation(self) -> str:
        """What was exported and how to run it: what a model tells the user."""
        scope = f"session {self.session}" if self.session else "the whole workspace"
        return (f"Wrote {self.script.id} ({self.script.path}): a Python script that replays {self.n_calls} tool "
                f"call(s) of {scope} ({', '.join(self.tools)}) and checks the sha256 of {self.n_artifacts} "
                f"artifact(s). Run it with: python {self.script.path} [WORKSPACE_DIR]")


@tool(category="session", cacheable=False)
def export_session(
    session: Annotated[str | None, Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Id of another agent session to export. Leave it out to export this session (outside an "
                    "agent session: every artifact of the workspace).")] = None,
    *,
    ctx: ToolContext,
) -> SessionExport:
    """Export what this session made as a Python script that reproduces it without the assistant.

    Use it when asked to export, save or share the analysis as a script. The script reruns every tool
    call that made an artifact in a fresh workspace and checks each artifact's sha256.
    """
    chosen = session or ctx.session
    calls = _calls(ctx, chosen, explicit=session is not None)
    pending = ctx.new_artifact("script")
    (pending.directory / _SCRIPT_NAME).write_text(render_script(ctx.workspace, calls))
    n_artifacts = sum(len(call.outputs) for call in calls)
    scope = f"session {chosen}" if chosen else "the workspace"
    script = pending.finish(_SCRIPT_NAME, f"reproduction script of {scope}: {len(calls)} call(s), "
                            f"{n_artifacts} artifact(s)", {
                                "session": chosen, "calls": [c.id for c in calls],
                                "artifacts": [a for c in calls for a in c.outputs]})
    return SessionExport(script=script, session=chosen, n_calls=len(calls), n_artifacts=n_artifacts,
                         tools=[c.tool for c in calls])


def _calls(ctx: ToolContext, session: str | None, explicit: bool) -> list[CallRecord]:
    """The calls to replay; an input error saying what to do when there is nothing to export."""
    if session is not None:
        own = ctx.workspace.calls(session=session)
        if explicit and not own and all(s["id"] != session for s in ctx.workspace.sessions()):
            raise ToolInputError.for_param("export_session", "session", session, "is not an agent session of this "
                                           "workspace. Leave it out to export the current session.")
        if not any(c.outputs for c in own if c.tool not in NOT_REPLAYED):
            raise ToolInputError(f"export_session: session {session} has made no artifacts yet, so there is "
                                 "nothing to reproduce. Make one first (e.g. generate_events), then export.",
                                 tool="export_session", param="session", value=session)
    calls = calls_for_export(ctx.workspace, session=session)
    if not calls:
        raise ToolInputError("export_session: the workspace has no artifacts yet, so there is nothing to "
                             "reproduce. Make one first (e.g. generate_events), then export.",
                             tool="export_session", param="session")
    return calls
