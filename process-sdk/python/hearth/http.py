"""HTTP and WebSocket through the node's `http-server:distro:sys`: bind
paths under `/<our-process-id>/`, read its events, answer, push, publish.
The JSON shapes mirror `node/src/http/wire.rs`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

from .address import Address, ProcessId, our
from .message import Blob, Incoming, Request, Response

PUBLIC = "public"
AUTHENTICATED = "authenticated"
LOCAL_ONLY = "local-only"
_ACCESS = (PUBLIC, AUTHENTICATED, LOCAL_ONLY)

# Bind requests are answered at once by the server.
BIND_TIMEOUT_MS = 5_000


def server() -> Address:
    """`http-server:distro:sys` on our node."""
    return Address(our().node, ProcessId("http-server", "distro", "sys"))


def is_from_server(msg: Incoming) -> bool:
    p = msg.source.process
    return (p.process == "http-server" and p.package == "distro" and p.publisher == "sys"
            and msg.source.node == our().node)


@dataclass
class HttpRequest:
    id: int
    method: str
    path: str
    bound_path: str
    params: Dict[str, str]
    query: Dict[str, str]
    headers: Dict[str, str]
    user: Optional[str]
    body: bytes = b""

    def json(self):
        return json.loads(self.body) if self.body.strip() else None


@dataclass
class WsOpen:
    conn: int
    path: str
    query: Dict[str, str] = field(default_factory=dict)
    user: Optional[str] = None


@dataclass
class WsMessage:
    conn: int
    binary: bool
    payload: bytes

    def text(self) -> str:
        return bytes(self.payload).decode("utf-8", errors="replace")


@dataclass
class WsClose:
    conn: int


HttpEvent = Union[HttpRequest, WsOpen, WsMessage, WsClose]


def event(msg: Incoming) -> Optional[HttpEvent]:
    """The HTTP server's event in `msg`; `None` for any other message."""
    if not msg.is_request or not is_from_server(msg):
        return None
    try:
        value = msg.json()
    except ValueError:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (kind, data), = value.items()
    payload = b"" if msg.blob is None else bytes(msg.blob.bytes)
    try:
        if kind == "Http":
            return HttpRequest(msg.id, data["method"], data["path"], data["bound_path"],
                               data.get("params") or {}, data.get("query") or {},
                               data.get("headers") or {}, data.get("user"), payload)
        if kind == "WsOpen":
            return WsOpen(data["conn"], data["path"], data.get("query") or {}, data.get("user"))
        if kind == "WsMessage":
            return WsMessage(data["conn"], bool(data.get("binary")), payload)
        if kind == "WsClose":
            return WsClose(data["conn"])
    except (KeyError, TypeError):
        return None
    return None


class Reply:
    """What an `App` HTTP handler returns to answer with its own body,
    status and headers (a page, a file) instead of JSON."""

    def __init__(self, body: bytes | str, status: int = 200,
                 headers: Optional[Dict[str, str]] = None,
                 content_type: str = "text/plain; charset=utf-8"):
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.status = int(status)
        self.headers = dict(headers or {})
        self.headers.setdefault("content-type", content_type)

    @staticmethod
    def html(text: str, status: int = 200) -> "Reply":
        return Reply(text, status, content_type="text/html; charset=utf-8")


def _check_access(access: str) -> str:
    if access not in _ACCESS:
        raise ValueError(f"access is one of {', '.join(_ACCESS)}, not {access!r}")
    return access


def _tell(body, blob: Optional[bytes] = None) -> None:
    r = Request.to(server()).json(body)
    if blob is not None:
        r = r.blob(Blob(blob))
    r.send()


async def _call(body, blob: Optional[bytes] = None) -> int:
    r = Request.to(server()).json(body).timeout_ms(BIND_TIMEOUT_MS)
    if blob is not None:
        r = r.blob(Blob(blob))
    reply = (await r.ask()).json()
    if isinstance(reply, dict) and "Ok" in reply:
        return int(reply["Ok"])
    raise HttpError(json.dumps(reply.get("Err") if isinstance(reply, dict) else reply))


class HttpError(Exception):
    """The HTTP server refused (a bad path pattern, an unknown connection)."""


def bind(path: str, access: str = AUTHENTICATED) -> None:
    """Bind an HTTP path under our prefix (`:name` segments capture, a last
    `*name` captures the rest), fire-and-forget."""
    _tell({"Bind": {"path": path, "access": _check_access(access)}})


def bind_ws(path: str, access: str = AUTHENTICATED) -> None:
    _tell({"BindWs": {"path": path, "access": _check_access(access)}})


async def bind_checked(path: str, access: str = AUTHENTICATED, websocket: bool = False) -> None:
    """`bind`/`bind_ws`, awaiting the server's answer (raises `HttpError`)."""
    kind = "BindWs" if websocket else "Bind"
    await _call({kind: {"path": path, "access": _check_access(access)}})


def unbind(path: str) -> None:
    _tell({"Unbind": {"path": path}})


def answer(id: int, status: int = 200, headers: Optional[Dict[str, str]] = None,
           body: bytes | str = b"") -> None:
    """Answer HTTP request `id`."""
    body = body.encode() if isinstance(body, str) else bytes(body)
    Response().json({"status": int(status), "headers": headers or {}}).blob(Blob(body)).send(id)


def answer_json(id: int, value, status: int = 200) -> None:
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    answer(id, status, {"content-type": "application/json"}, body)


def push_text(conn: int, text: str) -> None:
    """A text frame to one of our WebSocket connections."""
    _tell({"WsPush": {"conn": conn, "binary": False}}, text.encode())


def push_binary(conn: int, data: bytes) -> None:
    _tell({"WsPush": {"conn": conn, "binary": True}}, bytes(data))


def publish_text(topic: str, text: str) -> None:
    """A text frame to every connection that joined `topic`."""
    _tell({"WsPublish": {"topic": topic, "binary": False}}, text.encode())


def publish_binary(topic: str, data: bytes) -> None:
    _tell({"WsPublish": {"topic": topic, "binary": True}}, bytes(data))


async def publish_counted(topic: str, text: str) -> int:
    """`publish_text`, awaiting the number of connections it reached."""
    return await _call({"WsPublish": {"topic": topic, "binary": False}}, text.encode())


def join(conn: int, topic: str) -> None:
    _tell({"WsJoin": {"conn": conn, "topic": topic}})


def leave(conn: int, topic: str) -> None:
    _tell({"WsLeave": {"conn": conn, "topic": topic}})


def close(conn: int) -> None:
    _tell({"WsClose": {"conn": conn}})
