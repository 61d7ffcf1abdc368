"""Start child processes from wasm files of our package."""

from __future__ import annotations

from typing import List, Optional

from . import _wit
from .address import ProcessId


class SpawnError(Exception):
    """The node refused the spawn (bad name, path, running already...)."""


class OnExit:
    """What the node does when the child exits."""

    NONE = "none"
    RESTART = "restart"

    def __init__(self, kind: str = NONE, requests: Optional[List] = None):
        self.kind = kind
        self.requests = requests or []

    @staticmethod
    def send(requests: List) -> "OnExit":
        """Send these `Request`s when it exits, then stay down."""
        return OnExit("requests", requests)

    def _wit(self):
        t = _wit.types()
        if self.kind == "restart":
            return t.OnExit_Restart()
        if self.kind == "requests":
            return t.OnExit_Requests([r._outgoing() for r in self.requests])
        return t.OnExit_None_()


def spawn(name: str, wasm_path: str, on_exit: OnExit | str = OnExit.NONE,
          public: bool = False, networking: bool = False) -> ProcessId:
    """Start `name:our-package:our-publisher` from `wasm_path` (inside our
    package's `pkg/`, like `/worker.wasm`). Raises `SpawnError`."""
    if isinstance(on_exit, str):
        on_exit = OnExit(on_exit)
    options = _wit.types().SpawnOptions(wasm_path, on_exit._wit(), public, networking)
    try:
        return ProcessId._from_wit(_wit.kernel().spawn(name, options))
    except Exception as e:
        raise SpawnError(str(getattr(e, "value", e))) from None
