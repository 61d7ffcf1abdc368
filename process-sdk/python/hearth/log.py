"""Logging through the node: each line lands in the node's log inside this
process's span. `print` to stderr also works (as a warning)."""

from . import _wit


def _log(level: str, message: str) -> None:
    t = _wit.types()
    _wit.kernel().log(getattr(t.LogLevel, level), str(message))


def error(message: str) -> None:
    _log("ERROR", message)


def warn(message: str) -> None:
    _log("WARN", message)


def info(message: str) -> None:
    _log("INFO", message)


def debug(message: str) -> None:
    _log("DEBUG", message)


def trace(message: str) -> None:
    _log("TRACE", message)
