"""This process's persisted state: bytes, or JSON through `get_json` /
`set_json`. `set_*` and `clear` are durable when they return."""

from __future__ import annotations

import json
from typing import Any, Optional

from . import _wit


class StateError(Exception):
    """The state could not be saved (the node's store refused)."""


def get() -> Optional[bytes]:
    return _wit.kernel().get_state()


def set(data: bytes) -> None:
    try:
        _wit.kernel().set_state(bytes(data))
    except Exception as e:
        raise StateError(str(getattr(e, "value", e))) from None


def clear() -> None:
    try:
        _wit.kernel().clear_state()
    except Exception as e:
        raise StateError(str(getattr(e, "value", e))) from None


def get_json(default: Any = None) -> Any:
    """The state as JSON, `default` when there is none. Raises
    `ValueError` when the saved bytes are not JSON."""
    data = get()
    return default if data is None else json.loads(data)


def set_json(value: Any) -> None:
    set(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
