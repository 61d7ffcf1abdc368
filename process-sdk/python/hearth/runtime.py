"""The glue between the component's exports and the app.

`kit b` generates the component's entry module, which defines the
`WitWorld` class componentize-py exports and calls `export_init` and
`export_handle` here. The app module registers one handler (an `App` or a
`Process`) when it is imported.

An exception that escapes the app crashes the process: its traceback is
printed to stderr, which the node keeps as the crash report's last words,
and the component aborts (a trap: the node stops this incarnation only).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Optional

from . import _wit, executor
from . import address
from .address import Address, our  # noqa: F401  (our: kept as runtime.our)
from .message import Failure, Incoming

_target = None


def register(target) -> None:
    """Make `target` (an `App`, or a `Process` instance) this component's
    handler. One per component."""
    global _target
    if _target is not None and _target is not target:
        raise RuntimeError("a component has one App or Process; a second was registered")
    _target = target


def crash(error: BaseException) -> None:
    """Print `error` with its traceback and stop this incarnation."""
    try:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        sys.stderr.flush()
    finally:
        os.abort()


def crash_on_error(_value, error: Optional[BaseException]) -> None:
    """`on_done` of tasks whose errors nobody handles."""
    if error is not None:
        crash(error)


def export_init(our_wit) -> None:
    try:
        address._set_our(Address._from_wit(our_wit))
        if _target is None:
            raise RuntimeError(
                "the app module registered no handler: create a hearth.App() or "
                "decorate a hearth.Process subclass with @hearth.process")
        _target._hearth_init(our())
    except BaseException as e:
        crash(e)


def export_handle(event) -> None:
    try:
        t = _wit.types()
        if isinstance(event, t.Event_Message):
            msg = Incoming._from_wit(event.value)
            if msg.is_request:
                _target._hearth_request(msg)
            elif not executor.claim_response(msg):
                _target._hearth_response(msg)
        else:
            failure = Failure._from_wit(event.value)
            if not executor.claim_failure(failure):
                _target._hearth_failure(failure)
    except BaseException as e:
        crash(e)
