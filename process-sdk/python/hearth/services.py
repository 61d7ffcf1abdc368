"""Calling the node's services (`kv`, `vfs`, `timer`, `rooms`...), which
answer `{"Ok": value}` or `{"Err": error}` with bulk bytes as the blob."""

from __future__ import annotations

import json
from typing import Any, Optional, Tuple

from .address import Address, ProcessId, our
from .message import Request


class ServiceError(Exception):
    """A node service refused. `kind` is the error's variant (`NotFound`,
    `Forbidden`...) or `bad-reply` for an answer that did not decode;
    `detail` its data."""

    def __init__(self, kind: str, detail: Any = None):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return self.kind if self.detail is None else f"{self.kind}: {self.detail}"


def service(name: str) -> Address:
    """`name:distro:sys` on our node."""
    return Address(our().node, ProcessId(name, "distro", "sys"))


def split_variant(value: Any) -> Tuple[str, Any]:
    """`"Ok"` -> ("Ok", None); `{"Value": {...}}` -> ("Value", {...})."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.items()))
    raise ServiceError("bad-reply", f"not an enum value: {value!r}"[:300])


async def call(name: str, body: Any, blob: Optional[bytes], timeout_ms: int,
               error: type = ServiceError) -> Tuple[Any, Optional[bytes]]:
    """Ask service `name`; returns the `Ok` value and the reply's blob
    bytes, raises `error(kind, detail)` for an `Err` and `SendError` when
    the request failed."""
    request = Request.to(service(name)).json(body).timeout_ms(timeout_ms)
    if blob is not None:
        request = request.blob(blob)
    reply = await request.ask()
    try:
        result = json.loads(reply.body)
    except ValueError:
        raise error("bad-reply", reply.text()[:300]) from None
    if isinstance(result, dict) and "Ok" in result:
        return result["Ok"], None if reply.blob is None else reply.blob.bytes
    if isinstance(result, dict) and "Err" in result:
        kind, detail = split_variant(result["Err"])
        raise error(kind, detail)
    raise error("bad-reply", reply.text()[:300])
