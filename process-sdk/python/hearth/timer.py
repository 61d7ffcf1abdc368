"""Timers of the node service `timer:distro:sys`: `await sleep_ms(ms)`."""

from __future__ import annotations

from .services import ServiceError, call

# Time the timer service has to answer beyond the delay itself.
_SLACK_MS = 10_000


class TimerError(ServiceError):
    """`TooMany`, `TooLong`, `BadRequest`..."""


async def sleep_ms(ms: int) -> None:
    """Resume after `ms` milliseconds (the timer answers our request then)."""
    ms = int(ms)
    await call("timer", {"SetTimer": {"ms": ms}}, None, ms + _SLACK_MS, TimerError)
