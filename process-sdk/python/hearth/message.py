"""What arrives (`Incoming`, `Failure`) and what leaves (`Request`,
`Response`), with JSON bodies and blobs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from . import _wit
from . import executor
from .address import Address, our
from .errors import ENCODING, SendError

# The timeout `ask` uses when none was set: an awaited request always needs
# one, or a lost answer would park its task forever.
DEFAULT_ASK_TIMEOUT_MS = 30_000


@dataclass
class Blob:
    """Bulk bytes beside a request or response."""

    bytes: bytes
    mime: Optional[str] = None

    def _wit(self):
        return _wit.types().Blob(self.mime, bytes(self.bytes))

    @staticmethod
    def _from_wit(w) -> Optional["Blob"]:
        return None if w is None else Blob(w.bytes, w.mime)


def _encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class Incoming:
    """A request or response delivered to this process."""

    __slots__ = ("id", "source", "is_request", "expects_response", "inherit", "body",
                 "metadata", "blob", "context")

    def __init__(self, id, source, is_request, expects_response, inherit, body, metadata,
                 blob, context):
        self.id: int = id
        self.source: Address = source
        self.is_request: bool = is_request
        # The asker's timeout in ms, or None for fire-and-forget and responses.
        self.expects_response: Optional[int] = expects_response
        self.inherit: bool = inherit
        self.body: bytes = body
        self.metadata: Optional[str] = metadata
        self.blob: Optional[Blob] = blob
        # For a response: the context we attached to our request.
        self.context: Optional[bytes] = context

    @property
    def is_response(self) -> bool:
        return not self.is_request

    def json(self) -> Any:
        """The body as JSON (raises `ValueError` if it is not)."""
        return json.loads(self.body)

    def text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        kind = "request" if self.is_request else "response"
        return f"<Incoming {kind} {self.id} from {self.source}, {len(self.body)} bytes>"

    @staticmethod
    def _from_wit(w) -> "Incoming":
        t = _wit.types()
        msg = w.message
        if isinstance(msg, t.Message_Request):
            r = msg.value
            return Incoming(w.id, Address._from_wit(w.source), True, r.expects_response,
                            r.inherit, r.body, r.metadata, Blob._from_wit(w.blob), w.context)
        r = msg.value
        return Incoming(w.id, Address._from_wit(w.source), False, None, False, r.body,
                        r.metadata, Blob._from_wit(w.blob), w.context)


class Failure:
    """A request of ours that failed after it was accepted."""

    __slots__ = ("id", "error", "context")

    def __init__(self, id: int, error: SendError, context: Optional[bytes]):
        self.id = id
        self.error = error
        self.context = context

    def __repr__(self) -> str:
        return f"<Failure {self.id}: {self.error}>"

    @staticmethod
    def _from_wit(w) -> "Failure":
        return Failure(w.id, SendError._from_wit(w.error), w.context)


class Request:
    """A request being built; finish it with `send()` or `await ask()`.

        Request.to("echo:echo:sys").json({"echo": {"message": 1}}).timeout_ms(5000).send()
        reply = await Request.to(target).body(b"ping").ask()
    """

    def __init__(self, target):
        self.target: Address = Address.of(target)
        self._body: bytes = b""
        self._error: Optional[str] = None
        self._metadata: Optional[str] = None
        self._timeout_ms: Optional[int] = None
        self._context: Optional[bytes] = None
        self._blob: Optional[Blob] = None
        self._inherit = False

    @staticmethod
    def to(target) -> "Request":
        """A request to `target` (an `Address`, a `ProcessId` on our node,
        or their text), fire-and-forget until a timeout is set."""
        return Request(target)

    def body(self, body: bytes | str) -> "Request":
        self._body = body.encode() if isinstance(body, str) else bytes(body)
        return self

    def json(self, value: Any) -> "Request":
        """The body is `value` as JSON; an encoding error is raised by
        `send`/`ask` as a `SendError` of kind `encoding`."""
        try:
            self._body = _encode_json(value)
        except (TypeError, ValueError) as e:
            self._error = str(e)
        return self

    def metadata(self, metadata: str) -> "Request":
        self._metadata = metadata
        return self

    def timeout_ms(self, ms: int) -> "Request":
        """Expect a response within `ms` milliseconds."""
        self._timeout_ms = int(ms)
        return self

    def context(self, context: bytes) -> "Request":
        """Bytes that stay on this node and come back with the answer."""
        self._context = bytes(context)
        return self

    def blob(self, blob: Blob | bytes, mime: Optional[str] = None) -> "Request":
        self._blob = blob if isinstance(blob, Blob) else Blob(bytes(blob), mime)
        return self

    def inherit(self, inherit: bool = True) -> "Request":
        """Forward the request being handled (see the WIT's `inherit`)."""
        self._inherit = inherit
        return self

    def _parts(self):
        if self._error is not None:
            raise SendError(ENCODING, self.target, self._error)
        request = _wit.types().Request(self._inherit, self._timeout_ms, self._body,
                                       self._metadata)
        blob = None if self._blob is None else self._blob._wit()
        return self.target._wit(), request, blob

    def send(self) -> int:
        """Send now; returns the correlation id. Raises `SendError` for
        errors the node sees at once."""
        target, request, blob = self._parts()
        try:
            return _wit.kernel().send_request(target, request, self._context, blob)
        except Exception as e:
            raise _send_error(e, self.target) from None

    def ask(self):
        """Send and await the response (an `Incoming`), within the timeout
        (`DEFAULT_ASK_TIMEOUT_MS` when none was set). Raises `SendError`."""
        if self._timeout_ms is None:
            self._timeout_ms = DEFAULT_ASK_TIMEOUT_MS
        return executor.wait_for(self.send())

    def _outgoing(self):
        target, request, blob = self._parts()
        return _wit.types().OutgoingRequest(target, request, blob)


class Response:
    """A response being built; finish it with `send(answering_id)`."""

    def __init__(self):
        self._body = b""
        self._error: Optional[str] = None
        self._metadata: Optional[str] = None
        self._blob: Optional[Blob] = None

    def body(self, body: bytes | str) -> "Response":
        self._body = body.encode() if isinstance(body, str) else bytes(body)
        return self

    def json(self, value: Any) -> "Response":
        try:
            self._body = _encode_json(value)
        except (TypeError, ValueError) as e:
            self._error = str(e)
        return self

    def metadata(self, metadata: str) -> "Response":
        self._metadata = metadata
        return self

    def blob(self, blob: Blob | bytes, mime: Optional[str] = None) -> "Response":
        self._blob = blob if isinstance(blob, Blob) else Blob(bytes(blob), mime)
        return self

    def send(self, answering: int) -> None:
        """Answer request `answering`. Raises `SendError` (`no-asker` when it
        is unknown or answered already)."""
        if self._error is not None:
            raise SendError(ENCODING, our(), self._error)
        response = _wit.types().Response(self._body, self._metadata)
        blob = None if self._blob is None else self._blob._wit()
        try:
            _wit.kernel().send_response(answering, response, blob)
        except Exception as e:
            raise _send_error(e, our()) from None


def respond(answering: int, body: bytes | str, blob: Optional[Blob] = None) -> None:
    r = Response().body(body)
    if blob is not None:
        r = r.blob(blob)
    r.send(answering)


def respond_json(answering: int, value: Any) -> None:
    Response().json(value).send(answering)


def _send_error(e: Exception, target) -> Exception:
    """The `SendError` inside a generated binding's `Err`."""
    value = getattr(e, "value", None)
    if value is not None and hasattr(value, "kind") and hasattr(value, "target"):
        return SendError._from_wit(value)
    return e
