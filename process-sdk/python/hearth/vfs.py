"""Files of the node service `vfs:distro:sys`, in our package's drive.

    fs = Vfs()
    await fs.write("notes/a.txt", b"hello")
    data = await fs.read("notes/a.txt")
"""

from __future__ import annotations

from typing import List, Optional

from .services import ServiceError, call

TIMEOUT_MS = 30_000


class VfsError(ServiceError):
    """`NotFound`, `AlreadyExists`, `Traversal`, `Forbidden`..."""


class Vfs:
    def __init__(self, drive: Optional[str] = None):
        """Our package's drive, or `drive` (`name:publisher`) of another
        package that granted us access."""
        self.drive = drive

    async def _ask(self, op: str, blob=None, **fields):
        body = {op: dict(drive=self.drive, **fields)}
        return await call("vfs", body, blob, TIMEOUT_MS, VfsError)

    async def create_dir(self, path: str) -> None:
        await self._ask("CreateDir", path=path)

    async def write(self, path: str, data: bytes | str) -> None:
        data = data.encode() if isinstance(data, str) else bytes(data)
        await self._ask("Write", data, path=path)

    async def append(self, path: str, data: bytes | str) -> None:
        data = data.encode() if isinstance(data, str) else bytes(data)
        await self._ask("Append", data, path=path)

    async def read(self, path: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        _, blob = await self._ask("Read", path=path, offset=offset, length=length)
        return blob or b""

    async def list(self, path: str = "") -> List[dict]:
        """Entries `{name, is_dir, len}`."""
        value, _ = await self._ask("List", path=path)
        return value["List"]["entries"]

    async def metadata(self, path: str) -> dict:
        """`{is_dir, len, modified_ms}`."""
        value, _ = await self._ask("Metadata", path=path)
        return value["Metadata"]

    async def rename(self, src: str, dst: str) -> None:
        await self._ask("Rename", **{"from": src, "to": dst})

    async def remove(self, path: str) -> None:
        await self._ask("Remove", path=path)
