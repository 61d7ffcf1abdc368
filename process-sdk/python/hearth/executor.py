"""A small single-threaded executor for `async def` code in a process.

`await request.ask()` suspends the task until the response or failure with
that correlation id arrives; `handle` resumes exactly that task. There is
no event loop and no polling: a task runs only when its own answer comes.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .errors import SendError


class _Waiting:
    """What a task yields: the correlation id it waits for."""

    __slots__ = ("id",)

    def __init__(self, id: int):
        self.id = id

    def __await__(self):
        answer = yield self
        return answer


async def _wait(id: int):
    return await _Waiting(id)


def wait_for(id: int):
    """An awaitable of the answer to request `id`."""
    return _wait(id)


class Task:
    """A coroutine driven by answers. `on_done(value, error)` is called once
    when it finishes; an exception it raises is `error`."""

    __slots__ = ("coro", "on_done")

    def __init__(self, coro, on_done: Optional[Callable[[Any, Optional[BaseException]], None]]):
        self.coro = coro
        self.on_done = on_done

    def step(self, value: Any = None, error: Optional[BaseException] = None) -> None:
        try:
            if error is not None:
                waited = self.coro.throw(error)
            else:
                waited = self.coro.send(value)
        except StopIteration as done:
            self._finish(done.value, None)
            return
        except BaseException as e:  # handed to on_done, which decides
            self._finish(None, e)
            return
        if not isinstance(waited, _Waiting):
            self._finish(None, TypeError(
                f"a Hearth task awaited {waited!r}; only requests' ask() and "
                "SDK calls can be awaited (asyncio does not run in a process)"))
            return
        _WAITING[waited.id] = self

    def _finish(self, value, error) -> None:
        if self.on_done is not None:
            self.on_done(value, error)
        elif error is not None:
            raise error


# Correlation id -> the task awaiting its answer.
_WAITING: Dict[int, Task] = {}


def spawn_task(coro, on_done=None) -> None:
    """Run `coro` until its first `await` of an answer. Without `on_done`,
    an exception escaping it crashes the process (with its traceback)."""
    Task(coro, on_done).step()


def claim_response(msg) -> bool:
    """Resume the task awaiting `msg` (a response); False if none does."""
    task = _WAITING.pop(msg.id, None)
    if task is None:
        return False
    task.step(msg)
    return True


def claim_failure(failure) -> bool:
    """Resume the task awaiting the failed request with `failure.error`."""
    task = _WAITING.pop(failure.id, None)
    if task is None:
        return False
    task.step(None, failure.error)
    return True


def pending() -> int:
    """Tasks awaiting an answer."""
    return len(_WAITING)


__all__ = ["spawn_task", "claim_response", "claim_failure", "wait_for", "pending", "SendError"]
