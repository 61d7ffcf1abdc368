"""Typed errors: `SendError` (a message could not be delivered or answered)
and `AppError` (an app's typed error reply). Both are exceptions with a
stable string: `SendError.kind`, `AppError.code`."""

from __future__ import annotations

from .address import Address

# The kinds of `send-error-kind` in the WIT, plus `encoding`, raised by the
# SDK when a body cannot be encoded (never by the node).
UNKNOWN_PROCESS = "unknown-process"
CAPABILITY_MISSING = "capability-missing"
PAYLOAD_TOO_LARGE = "payload-too-large"
MAILBOX_FULL = "mailbox-full"
TIMEOUT = "timeout"
OFFLINE = "offline"
PROCESS_EXITED = "process-exited"
NO_ASKER = "no-asker"
BAD_ADDRESS = "bad-address"
ENCODING = "encoding"

_KINDS = [
    UNKNOWN_PROCESS,
    CAPABILITY_MISSING,
    PAYLOAD_TOO_LARGE,
    MAILBOX_FULL,
    TIMEOUT,
    OFFLINE,
    PROCESS_EXITED,
    NO_ASKER,
    BAD_ADDRESS,
]


class SendError(Exception):
    """A request or response that could not be delivered or answered.

    `kind` is one of the module constants (`"timeout"`, `"offline"`...),
    `target` the address it was for, `detail` the node's explanation.
    """

    def __init__(self, kind: str, target, detail: str = ""):
        super().__init__(kind, target, detail)
        self.kind = kind
        self.target = target
        self.detail = detail

    def __str__(self) -> str:
        text = f"{self.kind}: {self.target}"
        return f"{text}: {self.detail}" if self.detail else text

    @staticmethod
    def _from_wit(w) -> "SendError":
        kind = w.kind.name.lower().replace("_", "-")
        return SendError(kind, Address._from_wit(w.target), w.detail)


# Codes the SDK's app layer raises itself (the same as Rust's `#[app]`).
BAD_REQUEST = "bad-request"
UNKNOWN_METHOD = "unknown-method"
NOT_ALLOWED = "not-allowed"
FORBIDDEN = "forbidden"
NOT_FOUND = "not-found"
STATE_NOT_SAVED = "state-not-saved"
INTERNAL = "internal"
BAD_REPLY = "bad-reply"


class AppError(Exception):
    """A typed error reply: `{"error": {"code", "message", "details"?}}`.

    Raise it from a handler to answer with that error; `call` raises it
    when the called app answered with one.
    """

    def __init__(self, code: str, message: str = "", details=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_json(self) -> dict:
        out = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out

    @staticmethod
    def from_json(value) -> "AppError":
        if not isinstance(value, dict) or not isinstance(value.get("code"), str):
            return AppError(BAD_REPLY, f"not an error object: {value!r}"[:500])
        return AppError(value["code"], str(value.get("message", "")), value.get("details"))

    @staticmethod
    def from_send(error: SendError) -> "AppError":
        """The send error's kind becomes the code, as `?` does in Rust."""
        return AppError(error.kind, str(error))

    def http_status(self) -> int:
        """The status an HTTP handler answers with this error (as in Rust)."""
        code = self.code
        if code == BAD_REQUEST:
            return 400
        if code == FORBIDDEN:
            return 403
        if code in (UNKNOWN_METHOD, NOT_FOUND):
            return 404
        if code == NOT_ALLOWED:
            return 405
        if code in (INTERNAL, STATE_NOT_SAVED):
            return 500
        if code == BAD_REPLY:
            return 502
        if code == TIMEOUT:
            return 504
        if code in (OFFLINE, UNKNOWN_PROCESS, PROCESS_EXITED, MAILBOX_FULL):
            return 502
        return 422
