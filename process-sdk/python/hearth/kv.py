"""Key-value databases of the node service `kv:distro:sys`.

    db = await Kv.open("notes")
    await db.set("a", b"hello")
    value = await db.get("a")          # bytes or None
    async for key, value in db.scan("prefix/"): ...
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from .services import ServiceError, call

TIMEOUT_MS = 30_000


class KvError(ServiceError):
    """`NoSuchDb`, `Forbidden`, `BadName`, `EntryTooLarge`..."""


def _bytes(value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class Kv:
    """A database of our package (or another's that granted us access)."""

    def __init__(self, db: str, package: Optional[str] = None):
        self.db = db
        self.package = package

    @staticmethod
    async def open(db: str, package: Optional[str] = None) -> "Kv":
        """Open (creating if ours) database `db`; `package` is
        `name:publisher` of another package's database."""
        kv = Kv(db, package)
        await kv._ask({"Open": {"package": package, "db": db}})
        return kv

    async def _ask(self, body, blob=None):
        return await call("kv", body, blob, TIMEOUT_MS, KvError)

    def _key(self, key: str) -> dict:
        return {"package": self.package, "db": self.db, "key": key}

    async def get(self, key: str) -> Optional[bytes]:
        value, blob = await self._ask({"Get": self._key(key)})
        if isinstance(value, dict) and value.get("Value", {}).get("found"):
            return blob or b""
        return None

    async def set(self, key: str, value: bytes | str) -> None:
        """Durable when it returns."""
        await self._ask({"Set": self._key(key)}, _bytes(value))

    async def delete(self, key: str) -> bool:
        """Whether the key existed."""
        value, _ = await self._ask({"Delete": self._key(key)})
        return bool(isinstance(value, dict) and value.get("Deleted", {}).get("existed"))

    async def scan_page(self, prefix: str = "", start: Optional[str] = None, limit: int = 100,
                        max_bytes: Optional[int] = None) -> Tuple[List[Tuple[str, bytes]], Optional[str]]:
        """Entries whose key starts with `prefix`, from `start` on, at most
        `limit`; returns them and the key to start the next page at."""
        body = {"Scan": {"package": self.package, "db": self.db, "prefix": prefix,
                         "limit": limit, "start": start, "max_bytes": max_bytes}}
        value, blob = await self._ask(body)
        entries = (value or {}).get("Entries") if isinstance(value, dict) else None
        if entries is None:
            raise KvError("bad-reply", "expected entries")
        data = blob or b""
        out, at = [], 0
        for entry in entries["entries"]:
            end = at + int(entry["len"])
            if end > len(data):
                raise KvError("bad-reply", "scan values shorter than announced")
            out.append((entry["key"], bytes(data[at:end])))
            at = end
        return out, entries.get("next")

    async def batch(self, sets=(), deletes=()) -> None:
        """Apply `sets` ((key, value) pairs) and `deletes` (keys) atomically."""
        ops, blob = [], bytearray()
        for key, value in sets:
            value = _bytes(value)
            ops.append({"Set": {"key": key, "len": len(value)}})
            blob += value
        for key in deletes:
            ops.append({"Delete": {"key": key}})
        body = {"Batch": {"package": self.package, "db": self.db, "ops": ops}}
        await self._ask(body, bytes(blob))

    async def grant(self, to: str) -> None:
        """Let package `to` (`name:publisher`) use this database."""
        await self._ask({"Grant": {"db": self.db, "to": to}})
