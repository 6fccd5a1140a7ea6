r"""The embedded model's prompt state kept across processes: each ``physagent ask`` starts a new process,
and without this would re-read the fixed system prompt (~30 s of prompt processing on 2 cores).

llama.cpp can save a slot's KV cache to a file and restore it; only its HTTP endpoint exposes that
(``/slots/0?action=save|restore``), so the in-process server is started with the slot endpoints on
loopback behind a random API key (nothing else on the machine can use them). The file is written
under a temporary name and renamed, so a concurrent reader never restores half a file; a file that
cannot be restored (another model, a smaller context) is ignored and replaced at the next save.
llama.cpp reuses the longest common prefix of the restored tokens and the new prompt, so a state
saved after any request speeds up the next one as far as their prompts agree.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from physagent.knowledge import user_cache_dir

__all__ = ["PromptCache"]

log = logging.getLogger(__name__)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


class PromptCache:
    """Save and restore slot 0 of an in-process llama.cpp server as ``<folder>/<key>.bin``.

    Args:
        key: names the model and context size (a state only fits the model that made it).
        folder: default ``user_cache_dir("prompt-state")``.
    """

    def __init__(self, key: str, folder: Path | None = None):
        self.folder = folder or user_cache_dir("prompt-state")
        self.key, self.api_key = key, secrets.token_hex(16)
        self.address = ""  # set by :meth:`attach`
        self.saved = False

    def configure(self, params: Any) -> None:
        """Turn on the slot endpoints (key-protected) before the server starts; off if the folder cannot be made."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            log.debug("no prompt state: %s", error)
            self.saved = True  # nothing to save into
            return
        params.slot_save_path = f"{self.folder}{os.sep}"  # llama.cpp joins path and file name by concatenation
        params.endpoint_slots, params.api_keys = True, [self.api_key]

    def attach(self, server: Any) -> int:
        """Restore the saved state into the new server; returns the tokens restored (0 if none fit)."""
        self.address = str(server.listening_address).rstrip("/")
        if self.saved or not (self.folder / f"{self.key}.bin").is_file():
            return 0
        reply = self._slot_action("restore", f"{self.key}.bin")
        return int(reply.get("n_restored", 0))

    def save(self) -> None:
        """Save the current state once per process (after its first reply), replacing the previous file."""
        if self.saved or not self.address:
            return
        self.saved = True
        partial = f"{self.key}.{os.getpid()}.partial"
        if self._slot_action("save", partial).get("n_saved"):
            (self.folder / partial).replace(self.folder / f"{self.key}.bin")
        else:
            (self.folder / partial).unlink(missing_ok=True)

    def _slot_action(self, action: str, filename: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.address}/slots/0?action={action}", data=json.dumps({"filename": filename}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        try:
            with _DIRECT.open(request, timeout=60) as response:
                return dict(json.load(response))
        except (urllib.error.URLError, OSError, ValueError) as error:  # a cache: losing it only costs time
            log.debug("prompt state %s of %s failed: %s", action, filename, error)
            return {}
