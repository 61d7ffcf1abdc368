"""The generated bindings of `wit/process.wit`, imported on first use.

componentize-py generates the `wit_world` package while it builds the
component; importing it lazily keeps the pure-Python parts of the SDK
importable (and testable) on an ordinary CPython.
"""

_kernel = None
_types = None


def kernel():
    global _kernel
    if _kernel is None:
        from wit_world.imports import kernel as k

        _kernel = k
    return _kernel


def types():
    global _types
    if _types is None:
        from wit_world.imports import types as t

        _types = t
    return _types
