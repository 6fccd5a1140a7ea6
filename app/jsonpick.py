"""Tiny helper for shell pipelines (the Makefile demo): read ``--json`` outputs of ``physagent tools call``.

    python -m physagent.app.jsonpick OUT.json            prints the first artifact id
    python -m physagent.app.jsonpick --report A.json ... prints where every artifact is, with its summary
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--report":
        print("\nartifacts written:")
        for name in argv[1:]:
            for artifact in json.loads(Path(name).read_text())["artifacts"]:
                print(f"  {artifact['id']:16} {artifact['kind']:10} {artifact['path']}\n  {'':27}{artifact['summary']}")
        return
    print(json.loads(Path(argv[0]).read_text())["artifacts"][0]["id"])


if __name__ == "__main__":
    main(sys.argv[1:])
