"""A small flattened-device-tree (DTB) writer and reader.

Implements the blob format of the Devicetree Specification (v0.4, chapter 5):
a 40-byte header, the memory reservation block, the structure block
(BEGIN_NODE / PROP / END_NODE tokens) and the strings block, version 17.

Devices describe themselves with :class:`FdtNode`; property values are typed so
the encoding is never guessed:

=====================  ==========================================
Python value           encoding
=====================  ==========================================
``str``                NUL-terminated string
``list[str]``          string list (each NUL-terminated)
``Cells(1, 2)``        big-endian u32 cells
``U64(1, 2)``          big-endian u64 values
``bytes``              raw bytes, as given
``None`` / ``EMPTY``   empty property (a boolean flag)
=====================  ==========================================

:func:`build_dtb` turns a tree into a blob; :func:`parse_dtb` reads a blob back
(property values come back as raw ``bytes``) so callers and tests can inspect it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

FDT_MAGIC = 0xD00D_FEED
FDT_VERSION = 17
FDT_LAST_COMPATIBLE_VERSION = 16
FDT_HEADER_SIZE = 40
FDT_BEGIN_NODE = 0x1
FDT_END_NODE = 0x2
FDT_PROP = 0x3
FDT_NOP = 0x4
FDT_END = 0x9

_HEADER = struct.Struct(">10I")
_RESERVATION = struct.Struct(">QQ")
_U32 = struct.Struct(">I")

# Devicetree Specification 2.2.1 / 2.2.4: allowed characters of node and property names.
_NODE_NAME = re.compile(r"[0-9A-Za-z,._+\-]{1,31}(@[0-9A-Za-z,._+\-]+)?")
_PROPERTY_NAME = re.compile(r"[0-9A-Za-z,._+?#\-]{1,31}")


class FdtError(ValueError):
    """A tree or value that cannot be written as a DTB, or a blob that cannot be read."""


class Cells(tuple):
    """A property made of 32-bit cells: ``Cells(0, 5, 1)``."""

    def __new__(cls, *values: int) -> "Cells":
        return super().__new__(cls, values)

    def __repr__(self) -> str:
        return f"Cells({', '.join(hex(v) for v in self)})"


class U64(tuple):
    """A property made of 64-bit values: ``U64(base, size)``."""

    def __new__(cls, *values: int) -> "U64":
        return super().__new__(cls, values)

    def __repr__(self) -> str:
        return f"U64({', '.join(hex(v) for v in self)})"


class _Empty:
    _instance: "_Empty | None" = None

    def __new__(cls) -> "_Empty":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()
"""The value of a property that has no data (``interrupt-controller;``)."""

PropertyValue = str | list[str] | tuple[str, ...] | Cells | U64 | bytes | _Empty | None


def encode_value(value: PropertyValue) -> bytes:
    """The bytes a property value occupies in the structure block (before padding)."""
    if value is None or value is EMPTY:
        return b""
    if isinstance(value, Cells):
        return b"".join(_pack_int(">I", v, 32) for v in value)
    if isinstance(value, U64):
        return b"".join(_pack_int(">Q", v, 64) for v in value)
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        if not value:
            raise FdtError("an empty string list has no encoding; use EMPTY for a flag")
        return b"".join(_encode_string(s) for s in value)
    raise FdtError(
        f"cannot encode {value!r} ({type(value).__name__}): use str, list[str], "
        "Cells(...), U64(...), bytes or EMPTY"
    )


def _pack_int(fmt: str, value: int, bits: int) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FdtError(f"cell value {value!r} is not an int")
    if not 0 <= value < 1 << bits:
        raise FdtError(f"cell value {value:#x} does not fit in {bits} bits")
    return struct.pack(fmt, value)


def _encode_string(text: str) -> bytes:
    if "\0" in text:
        raise FdtError(f"string {text!r} contains a NUL byte")
    return text.encode("utf-8") + b"\0"


@dataclass
class FdtNode:
    """One device tree node: a name (``uart@40002000``; ``""`` for the root), ordered
    properties and ordered children."""

    name: str
    properties: dict[str, PropertyValue] | None = None
    children: list["FdtNode"] | None = None

    def __post_init__(self) -> None:
        self.properties = dict(self.properties or {})
        self.children = list(self.children or [])

    def add(self, child: "FdtNode") -> "FdtNode":
        """Append ``child`` and return it."""
        self.children.append(child)
        return child

    def set(self, name: str, value: PropertyValue = EMPTY) -> "FdtNode":
        """Set (or replace, keeping its position) a property; returns the node."""
        self.properties[name] = value
        return self

    def child(self, name: str) -> "FdtNode":
        """The direct child called ``name``; KeyError if absent."""
        for node in self.children:
            if node.name == name:
                return node
        raise KeyError(f"node {self.name or '/'} has no child {name!r}")

    def find(self, path: str) -> "FdtNode":
        """The node at ``path`` relative to this one, e.g. ``"intc/msic"`` or ``"/chosen"``."""
        node = self
        for part in path.strip("/").split("/"):
            if part:
                node = node.child(part)
        return node

    def walk(self, path: str = "") -> Iterator[tuple[str, "FdtNode"]]:
        """Depth-first (path, node) pairs, this node first."""
        here = path.rstrip("/") + "/" + self.name if path else "/"
        yield here, self
        for node in self.children:
            yield from node.walk(here)


def build_dtb(
    root: FdtNode,
    reservations: Iterable[tuple[int, int]] = (),
    boot_cpuid_phys: int = 0,
) -> bytes:
    """Serialise the tree rooted at ``root`` (whose name must be ``""``) to a DTB blob.

    ``reservations`` are (address, size) pairs for the memory reservation block.
    """
    if root.name != "":
        raise FdtError(f"the root node must have the empty name, not {root.name!r}")
    strings = _StringTable()
    structure = bytearray()
    _emit_node(root, structure, strings, is_root=True)
    structure += _U32.pack(FDT_END)

    reservation_block = b"".join(_RESERVATION.pack(a, s) for a, s in reservations)
    reservation_block += _RESERVATION.pack(0, 0)
    off_mem_rsvmap = FDT_HEADER_SIZE  # already 8-byte aligned
    off_dt_struct = off_mem_rsvmap + len(reservation_block)
    off_dt_strings = off_dt_struct + len(structure)
    string_block = bytes(strings.data)
    total_size = off_dt_strings + len(string_block)
    header = _HEADER.pack(
        FDT_MAGIC,
        total_size,
        off_dt_struct,
        off_dt_strings,
        off_mem_rsvmap,
        FDT_VERSION,
        FDT_LAST_COMPATIBLE_VERSION,
        boot_cpuid_phys,
        len(string_block),
        len(structure),
    )
    return header + reservation_block + bytes(structure) + string_block


class _StringTable:
    def __init__(self) -> None:
        self.data = bytearray()
        self.offsets: dict[str, int] = {}

    def offset(self, name: str) -> int:
        if name not in self.offsets:
            self.offsets[name] = len(self.data)
            self.data += name.encode("ascii") + b"\0"
        return self.offsets[name]


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _emit_node(node: FdtNode, out: bytearray, strings: _StringTable, is_root: bool = False) -> None:
    if not is_root and not _NODE_NAME.fullmatch(node.name):
        raise FdtError(f"invalid node name {node.name!r}")
    out += _U32.pack(FDT_BEGIN_NODE) + _pad4(node.name.encode("ascii") + b"\0")
    for name, value in node.properties.items():
        if not _PROPERTY_NAME.fullmatch(name):
            raise FdtError(f"invalid property name {name!r} in node {node.name or '/'}")
        try:
            data = encode_value(value)
        except FdtError as error:
            raise FdtError(f"property {name!r} of node {node.name or '/'}: {error}") from None
        out += struct.pack(">III", FDT_PROP, len(data), strings.offset(name)) + _pad4(data)
    seen: set[str] = set()
    for child in node.children:
        if child.name in seen:
            raise FdtError(f"node {node.name or '/'} has two children named {child.name!r}")
        seen.add(child.name)
        _emit_node(child, out, strings)
    out += _U32.pack(FDT_END_NODE)


# --- reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dtb:
    """A parsed blob: the tree (values as raw bytes) and the header fields worth checking."""

    root: FdtNode
    reservations: list[tuple[int, int]] = field(default_factory=list)
    version: int = FDT_VERSION
    boot_cpuid_phys: int = 0


def parse_dtb(blob: bytes) -> Dtb:
    """Read a DTB (version 16 or 17). Property values are returned as ``bytes``."""
    if len(blob) < FDT_HEADER_SIZE:
        raise FdtError(f"blob of {len(blob)} bytes is shorter than an FDT header")
    (magic, total, off_struct, off_strings, off_rsv, version, _last, cpuid, size_strings, size_struct) = (
        _HEADER.unpack_from(blob)
    )
    if magic != FDT_MAGIC:
        raise FdtError(f"bad FDT magic {magic:#x}")
    if total > len(blob):
        raise FdtError(f"header says {total} bytes, blob has {len(blob)}")
    strings = blob[off_strings : off_strings + size_strings]
    reservations = []
    offset = off_rsv
    while True:
        address, size = _RESERVATION.unpack_from(blob, offset)
        offset += _RESERVATION.size
        if address == 0 and size == 0:
            break
        reservations.append((address, size))

    stack: list[FdtNode] = []
    root: FdtNode | None = None
    offset = off_struct
    end = off_struct + size_struct
    while offset < end:
        (token,) = _U32.unpack_from(blob, offset)
        offset += 4
        if token == FDT_BEGIN_NODE:
            name_end = blob.index(b"\0", offset)
            node = FdtNode(blob[offset:name_end].decode("ascii"))
            offset = name_end + 1
            offset += -offset % 4
            if stack:
                stack[-1].add(node)
            elif root is None:
                root = node
            else:
                raise FdtError("more than one root node")
            stack.append(node)
        elif token == FDT_END_NODE:
            if not stack:
                raise FdtError("END_NODE without a node")
            stack.pop()
        elif token == FDT_PROP:
            length, name_offset = struct.unpack_from(">II", blob, offset)
            offset += 8
            name = strings[name_offset : strings.index(b"\0", name_offset)].decode("ascii")
            if not stack:
                raise FdtError(f"property {name!r} outside any node")
            stack[-1].properties[name] = bytes(blob[offset : offset + length])
            offset += length + (-length % 4)
        elif token == FDT_NOP:
            continue
        elif token == FDT_END:
            break
        else:
            raise FdtError(f"unknown structure token {token:#x} at offset {offset - 4}")
    if root is None or stack:
        raise FdtError("structure block does not hold exactly one complete root node")
    return Dtb(root=root, reservations=reservations, version=version, boot_cpuid_phys=cpuid)


def decode_cells(data: bytes) -> tuple[int, ...]:
    """A raw property value read as big-endian u32 cells."""
    if len(data) % 4:
        raise FdtError(f"{len(data)} bytes are not a whole number of cells")
    return struct.unpack(f">{len(data) // 4}I", data)


def decode_u64s(data: bytes) -> tuple[int, ...]:
    """A raw property value read as big-endian u64 values."""
    if len(data) % 8:
        raise FdtError(f"{len(data)} bytes are not a whole number of u64 values")
    return struct.unpack(f">{len(data) // 8}Q", data)


def decode_strings(data: bytes) -> list[str]:
    """A raw property value read as a NUL-terminated string list."""
    if not data.endswith(b"\0"):
        raise FdtError("string property is not NUL-terminated")
    return data[:-1].decode("utf-8").split("\0")
