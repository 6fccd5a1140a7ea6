r"""Latency of the agent on the embedded model: a one-tool request and a four-step pipeline, per mode.

Each request runs in a fresh workspace, ``--runs`` times, in one process (the model is loaded once, so
later runs reuse llama.cpp's prompt cache for the shared prefix, as a chat, the web UI or the REST
server do). Printed per request and mode: the median wall time and its split into prompt processing,
generation and tools (from the agent record's ``timing``), model turns, prompt tokens, and whether the
run finished with a grounded answer.

    python benchmarks/bench_agent.py [--runs 3] [--modes plan step] [--backend embedded:1.5b]

Targets on 2 CPU cores with the 1.5B model (issue 12): median ≤ 60 s for one tool, ≤ 150 s for four steps.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from physagent import Assistant, Workspace, get_backend

REQUESTS = {
    "one tool": "Produce 400 Z to mu mu events with MPI switched off and seed 8; what cross-section does Pythia give?",
    "four steps": ("Generate 600 boosted all-hadronic ttbar events (pT-hat above 400 GeV, MPI off, seed 5), cluster "
                   "anti-kT R = 1.0 jets above 300 GeV, histogram the leading jet mass between 0 and 300 GeV in 30 "
                   "bins, plot it, and say where it peaks."),
}


def run_once(backend: Any, mode: str, request: str, root: Path) -> dict[str, Any]:
    """One request in a fresh workspace; the record's timing, tokens and outcome."""
    assistant = Assistant(backend=backend, workspace=Workspace(root), mode=mode)  # type: ignore[arg-type]
    record = assistant.ask(request)
    return {"wall_s": record.wall_s, "turns": record.steps, "prompt_tokens": record.prompt_tokens,
            "ok": record.ok and all(c["ok"] for c in record.tool_calls[-1:]), **record.timing}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return statistics.median(float(r.get(key, 0.0)) for r in rows)

    return {"wall_s": median("wall_s"), "prompt_s": median("prompt_s"), "generation_s": median("generation_s"),
            "tools_s": median("tools_s"), "turns": median("turns"), "prompt_tokens": median("prompt_tokens"),
            "ok": f"{sum(r['ok'] for r in rows)}/{len(rows)}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["plan", "step"])
    parser.add_argument("--backend", default="embedded:1.5b")
    args = parser.parse_args()
    backend = get_backend(args.backend)
    print(f"| request | mode | median wall (s) | prompt (s) | generation (s) | tools (s) | turns | prompt tokens "
          f"| finished ok | ({args.backend}, {args.runs} runs each)")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name, request in REQUESTS.items():
            for mode in args.modes:
                rows = [run_once(backend, mode, request, Path(scratch) / f"{name}-{mode}-{i}")
                        for i in range(args.runs)]
                s = summary(rows)
                print(f"| {name} | {mode} | {s['wall_s']:.0f} | {s['prompt_s']:.0f} | {s['generation_s']:.0f} | "
                      f"{s['tools_s']:.0f} | {s['turns']:.0f} | {s['prompt_tokens']:.0f} | {s['ok']} |", flush=True)


if __name__ == "__main__":
    main()
