"""Live rooms through the node's hub `rooms:distro:sys`; mirrors
`process-sdk/src/rooms.rs` (the wire is `node/src/rooms/types.rs`).

    seq = await rooms.publish_acked("lobby", {"text": "hi"})      # the owner
    joined = await rooms.subscribe(owner, "lobby", from_seq=None)  # anyone
    # in handle: rooms.delivery(msg) / rooms.join_request(msg)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from . import message
from .address import Address, our
from .message import Incoming, Request
from .services import ServiceError, call, service, split_variant

# A subscription may cross to the owner's node and ask the owner (which
# has 5 s to answer): room for a dial as well.
ROOMS_TIMEOUT_MS = 20_000
_HUB = "rooms"


class RoomsError(ServiceError):
    """`BadRequest`, `Refused` (detail: the owner's `{"error": ..}`),
    `Unreachable`, `Limit`, `Forbidden`, or `bad-reply`."""


@dataclass
class Joined:
    next: int
    snapshot: Any


@dataclass
class RoomEvent:
    """`kind` is `event` (with `seq`, `payload`), `gap` (`next`), `lagged`
    (`from_seq`), `offline`, `online` or `ended`."""

    kind: str
    seq: Optional[int] = None
    payload: Any = None
    next: Optional[int] = None
    from_seq: Optional[int] = None


@dataclass
class RoomDelivery:
    owner: Address
    room: str
    event: RoomEvent


@dataclass
class RoomJoin:
    id: int
    room: str
    subscriber: Address


def publish(room: str, payload: Any) -> None:
    """Publish to our room `room`, fire-and-forget."""
    Request.to(service(_HUB)).json({"Publish": {"room": room, "payload": payload}}).send()


async def publish_acked(room: str, payload: Any) -> int:
    """Publish and return the event's sequence number (from 1)."""
    value = await _ask({"Publish": {"room": room, "payload": payload}})
    return int(_expect(value, "Published")["seq"])


async def subscribe(owner, room: str, from_seq: Optional[int] = None) -> Joined:
    """Subscribe to `room` of the process `owner` (on any node), resuming
    after `from_seq`, the last sequence number seen."""
    body = {"Subscribe": {"owner": str(Address.of(owner)), "room": room, "from": from_seq}}
    joined = _expect(await _ask(body), "Joined")
    return Joined(int(joined["next"]), joined.get("snapshot"))


async def unsubscribe(owner, room: str) -> None:
    body = {"Unsubscribe": {"owner": str(Address.of(owner)), "room": room}}
    kind, _ = split_variant(await _ask(body))
    if kind != "Left":
        raise RoomsError("bad-reply", f"expected Left, got {kind}")


async def _ask(body):
    value, _ = await call(_HUB, body, None, ROOMS_TIMEOUT_MS, RoomsError)
    return value


def _expect(value, wanted: str) -> dict:
    kind, data = split_variant(value)
    if kind != wanted or not isinstance(data, dict):
        raise RoomsError("bad-reply", f"expected {wanted}, got {value!r}"[:300])
    return data


def _from_hub(msg: Incoming):
    if not msg.is_request:
        return None
    p = msg.source.process
    if not (p.process == _HUB and p.package == "distro" and p.publisher == "sys"):
        return None
    if msg.source.node != our().node:
        return None
    try:
        value = msg.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) and len(value) == 1 else None


def _event(value) -> RoomEvent:
    kind, data = split_variant(value)
    data = data or {}
    if kind == "event":
        return RoomEvent("event", seq=int(data["seq"]), payload=data.get("payload"))
    if kind == "gap":
        return RoomEvent("gap", next=int(data["next"]))
    if kind == "lagged":
        return RoomEvent("lagged", from_seq=int(data["from"]))
    return RoomEvent(kind)


def delivery(msg: Incoming) -> Optional[RoomDelivery]:
    """A room event our hub delivered; `None` for any other message."""
    value = _from_hub(msg)
    if value is None or "room_event" not in value:
        return None
    d = value["room_event"]
    try:
        return RoomDelivery(Address.parse(d["owner"]), d["room"], _event(d["event"]))
    except (KeyError, TypeError, ValueError):
        return None


def join_request(msg: Incoming) -> Optional[RoomJoin]:
    """Someone asks to join one of our rooms; answer with `admit`/`refuse`."""
    value = _from_hub(msg)
    if value is None or "room_join" not in value:
        return None
    j = value["room_join"]
    try:
        return RoomJoin(msg.id, j["room"], Address.parse(j["subscriber"]))
    except (KeyError, TypeError, ValueError):
        return None


def admit(id: int, snapshot: Any = None) -> None:
    message.respond_json(id, {"ok": snapshot})


def refuse(id: int, code: str, text: str) -> None:
    message.respond_json(id, {"error": {"code": code, "message": text}})
