"""The "newc" cpio archive format (what the Linux kernel unpacks as an initramfs).

Written in Python rather than with the ``cpio`` tool so that device nodes such as
``/dev/console`` and root ownership can be recorded without being root, and so
the output is byte-for-byte reproducible (fixed inode numbers and mtimes).

Format (Documentation/driver-api/early-userspace/buffer-format.rst): each entry is
``"070701"`` + 13 eight-digit hex fields, the NUL-terminated name padded to a
4-byte boundary, the data padded to a 4-byte boundary; ``TRAILER!!!`` ends it.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

NEWC_MAGIC = b"070701"
TRAILER_NAME = "TRAILER!!!"
_FIELD_COUNT = 13
_HEADER_SIZE = len(NEWC_MAGIC) + 8 * _FIELD_COUNT


class CpioError(ValueError):
    """An archive that cannot be written or parsed."""


@dataclass(frozen=True)
class CpioEntry:
    """One archive member. ``name`` is relative (``bin/busybox``), without a leading slash."""

    name: str
    mode: int
    data: bytes = b""
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    rdev_major: int = 0
    rdev_minor: int = 0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def is_char_device(self) -> bool:
        return stat.S_ISCHR(self.mode)


def directory(name: str, permissions: int = 0o755) -> CpioEntry:
    return CpioEntry(name, stat.S_IFDIR | permissions)


def regular_file(name: str, data: bytes, permissions: int = 0o644) -> CpioEntry:
    return CpioEntry(name, stat.S_IFREG | permissions, data)


def symlink(name: str, target: str) -> CpioEntry:
    return CpioEntry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int, permissions: int = 0o600) -> CpioEntry:
    return CpioEntry(name, stat.S_IFCHR | permissions, rdev_major=major, rdev_minor=minor)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def write_newc(entries: list[CpioEntry]) -> bytes:
    """The archive holding ``entries`` in order (parents should precede their children)."""
    out = bytearray()
    seen: set[str] = set()
    for inode, entry in enumerate(entries, start=1):
        name = entry.name.strip("/")
        if not name or name == TRAILER_NAME or ".." in name.split("/"):
            raise CpioError(f"invalid member name {entry.name!r}")
        if name in seen:
            raise CpioError(f"duplicate member {name!r}")
        seen.add(name)
        if entry.data and not (stat.S_ISREG(entry.mode) or entry.is_symlink):
            raise CpioError(f"{name}: only regular files and symlinks carry data")
        nlink = 2 if entry.is_dir else 1
        out += _entry(name, entry, inode, nlink)
    out += _entry(TRAILER_NAME, CpioEntry(TRAILER_NAME, 0), 0, 1)
    return bytes(out)


def _entry(name: str, entry: CpioEntry, inode: int, nlink: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (
        inode,
        entry.mode,
        entry.uid,
        entry.gid,
        nlink,
        entry.mtime,
        len(entry.data),
        0,  # devmajor (of the filesystem holding the file)
        0,  # devminor
        entry.rdev_major,
        entry.rdev_minor,
        len(encoded),
        0,  # check: only used by the "070702" CRC format
    )
    header = NEWC_MAGIC + b"".join(b"%08X" % value for value in fields)
    return header + encoded + _pad4(_HEADER_SIZE + len(encoded)) + entry.data + _pad4(len(entry.data))


def read_newc(archive: bytes) -> list[CpioEntry]:
    """The members of a newc archive (stops at the trailer; concatenated archives are not followed)."""
    entries: list[CpioEntry] = []
    offset = 0
    while True:
        if archive[offset : offset + 6] != NEWC_MAGIC:
            raise CpioError(f"no newc header at offset {offset}")
        try:
            fields = [int(archive[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(_FIELD_COUNT)]
        except ValueError:
            raise CpioError(f"corrupt header at offset {offset}") from None
        _ino, mode, uid, gid, _nlink, mtime, size, _maj, _min, rmaj, rmin, namesize, _check = fields
        name_start = offset + _HEADER_SIZE
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = name_start + namesize + (-(_HEADER_SIZE + namesize) % 4)
        data = archive[data_start : data_start + size]
        if len(data) != size:
            raise CpioError(f"{name}: archive truncated")
        offset = data_start + size + (-size % 4)
        if name == TRAILER_NAME:
            return entries
        entries.append(CpioEntry(name, mode, bytes(data), uid, gid, mtime, rmaj, rmin))
