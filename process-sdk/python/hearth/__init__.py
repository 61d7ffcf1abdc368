"""The guest library for Hearth processes written in Python.

A process is a WebAssembly component that talks only by messages; this
package wraps the `hearth:process` WIT world (`wit/process.wit`), the same
one Rust processes use. `kit b` builds a package's Python processes with
componentize-py; `kit new --lang python NAME` starts one.

- `App`: named-argument JSON methods exposed `local`/`remote`/`http`, the
  `{"ok": ..}` / `{"error": {code, message}}` envelope, state saved after
  each call that changed it (see `hearth.app`);
- `Process` and `@process`: a plain `init`/`handle` process;
- `Address`, `ProcessId`; `Request`/`Response` builders, `respond`;
  `await Request.ask()` and `await call(...)`, with `SendError` (its
  `kind`) and `AppError` (its `code`) as exceptions;
- `state`, `spawn`, `log`, `http` (bindings, WebSocket pushes), `rooms`,
  `Kv`, `Vfs`, `timer`.
"""

from . import errors, http, log, rooms, state, timer
from .address import Address, AddressError, ProcessId, our
from .app import App, Ctx, call
from .errors import AppError, SendError
from .executor import spawn_task
from .kv import Kv, KvError
from .message import (DEFAULT_ASK_TIMEOUT_MS, Blob, Failure, Incoming, Request, Response,
                      respond, respond_json)
from .process import Process, process
from .services import ServiceError
from .spawn import OnExit, SpawnError, spawn
from .timer import sleep_ms
from .vfs import Vfs, VfsError

__all__ = [
    "Address", "AddressError", "App", "AppError", "Blob", "Ctx", "DEFAULT_ASK_TIMEOUT_MS",
    "Failure", "Incoming", "Kv", "KvError", "OnExit", "Process", "ProcessId", "Request",
    "Response", "SendError", "ServiceError", "SpawnError", "Vfs", "VfsError", "call", "errors",
    "http", "log", "our", "process", "respond", "respond_json", "rooms", "sleep_ms", "spawn",
    "spawn_task", "state", "timer",
]
