"""The plain process: a class with `init` and `handle`, for full control.

    @hearth.process
    class Hello(hearth.Process):
        def handle(self, msg):
            if msg.expects_response is not None:
                hearth.respond(msg.id, b"hello")

`handle` and `failed` may be `async def`; then they run as tasks, resumed
when the responses they await arrive.
"""

from __future__ import annotations

import inspect

from . import executor, log, runtime
from .address import Address
from .message import Failure, Incoming


class Process:
    def init(self, our: Address) -> None:
        """Called once per start (or restart)."""

    def handle(self, msg: Incoming) -> None:
        """Called for each request, and for responses no `ask` awaits."""

    def failed(self, failure: Failure) -> None:
        """A request of ours failed and no `ask` awaits it."""
        log.warn(f"request {failure.id} failed: {failure.error}")

    def _hearth_run(self, result) -> None:
        if inspect.iscoroutine(result):
            executor.spawn_task(result, runtime.crash_on_error)

    def _hearth_init(self, our: Address) -> None:
        self._hearth_run(self.init(our))

    def _hearth_request(self, msg: Incoming) -> None:
        self._hearth_run(self.handle(msg))

    _hearth_response = _hearth_request

    def _hearth_failure(self, failure: Failure) -> None:
        self._hearth_run(self.failed(failure))


def process(cls):
    """Class decorator: this `Process` subclass is the component's handler."""
    if not (isinstance(cls, type) and issubclass(cls, Process)):
        raise TypeError("@hearth.process goes on a subclass of hearth.Process")
    runtime.register(cls())
    return cls
