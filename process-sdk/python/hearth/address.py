"""Process ids and addresses: `process:package:publisher` and
`node@process:package:publisher`, checked as the node checks them, and
`our()`, this process's own address.

The SDK's modules import each other bottom-up only: `_wit` (the generated
bindings), `address`, `errors`, `executor`, `message`, then `services`,
`http`, `rooms`, `kv`, `vfs`, `timer`, `spawn`, `state`, `log`, and at the
top `runtime` (the exports), `process` and `app`."""

from __future__ import annotations

from dataclasses import dataclass

from . import _wit

MAX_PART = 64


class AddressError(ValueError):
    """A process id or address that does not parse."""


def _check(part: str, value: str, dots: bool) -> None:
    if not value:
        raise AddressError(f"{part} is empty")
    if len(value) > MAX_PART:
        raise AddressError(f"{part} {value!r} is longer than {MAX_PART} bytes")
    for c in value:
        ok = ("a" <= c <= "z") or ("0" <= c <= "9") or c == "-" or (dots and c == ".")
        if not ok:
            allowed = "[a-z0-9-.]" if dots else "[a-z0-9-]"
            raise AddressError(f"{part} {value!r} may hold only {allowed}")


@dataclass(frozen=True)
class ProcessId:
    process: str
    package: str
    publisher: str

    def __post_init__(self):
        _check("process", self.process, False)
        _check("package", self.package, False)
        _check("publisher", self.publisher, True)

    @staticmethod
    def parse(text: str) -> "ProcessId":
        parts = text.split(":")
        if len(parts) != 3:
            raise AddressError(f"{text!r} is not process:package:publisher")
        return ProcessId(*parts)

    def on(self, node: str) -> "Address":
        """This process on `node`."""
        return Address(node, self)

    def __str__(self) -> str:
        return f"{self.process}:{self.package}:{self.publisher}"

    def _wit(self):
        return _wit_types().ProcessId(self.process, self.package, self.publisher)

    @staticmethod
    def _from_wit(w) -> "ProcessId":
        return ProcessId(w.process, w.package, w.publisher)


@dataclass(frozen=True)
class Address:
    node: str
    process: ProcessId

    def __post_init__(self):
        _check("node", self.node, True)
        if isinstance(self.process, str):
            object.__setattr__(self, "process", ProcessId.parse(self.process))

    @staticmethod
    def parse(text: str, default_node: str | None = None) -> "Address":
        """`node@process:package:publisher`; without `node@`, the process
        on `default_node` (our own node when not given)."""
        if "@" in text:
            node, pid = text.split("@", 1)
            return Address(node, ProcessId.parse(pid))
        if default_node is None:
            default_node = our().node
        return Address(default_node, ProcessId.parse(text))

    @staticmethod
    def of(target: "Address | ProcessId | str") -> "Address":
        """An `Address` from an address, a process id on our node, or text."""
        if isinstance(target, Address):
            return target
        if isinstance(target, ProcessId):
            return Address(our().node, target)
        return Address.parse(target)

    def __str__(self) -> str:
        return f"{self.node}@{self.process}"

    def _wit(self):
        return _wit_types().Address(self.node, self.process._wit())

    @staticmethod
    def _from_wit(w) -> "Address":
        return Address(w.node, ProcessId._from_wit(w.process))


def _wit_types():
    return _wit.types()


_our: "Address | None" = None


def our() -> Address:
    """This process's address (asked of the node once, then kept)."""
    global _our
    if _our is None:
        _our = Address._from_wit(_wit.kernel().our())
    return _our


def _set_our(address: Address) -> None:
    """Called once by `runtime.export_init` with the address `init` got."""
    global _our
    _our = address
