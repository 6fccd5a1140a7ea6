"""A Markdown report of an agent request: the request, the answer, the steps, and the plots inline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from physagent.agent.record import AgentRecord

__all__ = ["write_report"]


def write_report(record: AgentRecord, path: Path) -> Path:
    """Write ``path`` (Markdown) and copy plot PNGs beside it; returns the path. Atomic per file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# physagent report — {record.session}", "", f"**Request.** {record.request}", "",
             f"**Answer.** {record.answer}", ""]
    lines += _steps(record) + _artifacts(record, path.parent) + _footer(record)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def _steps(record: AgentRecord) -> list[str]:
    rows = ["## Steps", "", "| # | tool | arguments | status |", "|---|---|---|---|"]
    for number, call in enumerate(record.tool_calls, start=1):
        status = "ok" if call["ok"] else f"failed: {call['error']}"
        arguments = json.dumps(call["arguments"]).replace("|", "\\|")
        rows.append(f"| {number} | `{call['tool']}` | `{arguments}` | {status.replace('|', '/')} |")
    return [*rows, ""]


def _artifacts(record: AgentRecord, folder: Path) -> list[str]:
    rows = ["## Artifacts", ""]
    for artifact in record.artifacts:
        rows.append(f"- `{artifact['id']}` ({artifact['kind']}): {artifact['summary']} — `{artifact['path']}`")
        if artifact["kind"] == "plot" and Path(artifact["path"]).suffix == ".png":
            image = folder / f"{artifact['id']}.png"
            shutil.copyfile(artifact["path"], image)
            rows += ["", f"![{artifact['summary']}]({image.name})", ""]
    return [*rows, ""]


def _footer(record: AgentRecord) -> list[str]:
    note = f" Unverified numbers: {', '.join(record.unsupported)}." if record.unsupported else ""
    if record.mislabelled:
        note += f" Mislabelled numbers: {', '.join(record.mislabelled)}."
    timing = record.timing
    split = (f" (model {timing.get('model_s', 0):.1f} s: prompt {timing.get('prompt_s', 0):.1f} s, generation "
             f"{timing.get('generation_s', 0):.1f} s; tools {timing.get('tools_s', 0):.1f} s)") if timing else ""
    return [f"_Backend {record.backend}, {record.mode} mode; {record.steps} model turns; {record.prompt_tokens} "
            f"prompt + {record.completion_tokens} completion tokens; {record.wall_s:.1f} s{split}.{note}_"]
