"""Assembling the guest initramfs: a gzip-compressed newc cpio archive.

:class:`Initramfs` collects entries (parents are added automatically) and
serialises them reproducibly. :func:`busybox_initramfs` is the base image:
busybox, ``/init`` and the directories and ``/dev/console`` node the kernel and
the script need. Later layers (kernel modules, a rootfs switcher) add entries
through ``extra_entries`` or by calling :meth:`Initramfs.add_*` before ``build``.
"""

from __future__ import annotations

import gzip
import posixpath
from collections.abc import Iterable
from pathlib import Path

from petard.guest import cpio
from petard.guest.init_script import BUSYBOX_PATH, INIT_SCRIPT

BASE_DIRECTORIES = ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root", "etc", "mnt")
CONSOLE_MAJOR, CONSOLE_MINOR = 5, 1  # /dev/console: the kernel opens it for init's stdio
GZIP_LEVEL = 9
GZIP_OS_OFFSET = 9          # RFC 1952: ID1 ID2 CM FLG MTIME(4) XFL OS
GZIP_OS_UNKNOWN = 0xFF


class Initramfs:
    """An ordered set of archive entries keyed by path."""

    def __init__(self) -> None:
        self._entries: dict[str, cpio.CpioEntry] = {}

    def _put(self, entry: cpio.CpioEntry) -> None:
        name = entry.name.strip("/")
        parent = posixpath.dirname(name)
        if parent and parent not in self._entries:
            self.add_directory(parent)
        existing = self._entries.get(name)
        if existing is not None and not (existing.is_dir and entry.is_dir):
            raise cpio.CpioError(f"{name} is already in the initramfs")
        self._entries[name] = entry

    def add_directory(self, name: str, permissions: int = 0o755) -> None:
        self._put(cpio.directory(name.strip("/"), permissions))

    def add_file(self, name: str, data: bytes, permissions: int = 0o644) -> None:
        self._put(cpio.regular_file(name.strip("/"), data, permissions))

    def add_symlink(self, name: str, target: str) -> None:
        self._put(cpio.symlink(name.strip("/"), target))

    def add_char_device(self, name: str, major: int, minor: int, permissions: int = 0o600) -> None:
        self._put(cpio.char_device(name.strip("/"), major, minor, permissions))

    def add_entries(self, entries: Iterable[cpio.CpioEntry]) -> None:
        for entry in entries:
            self._put(entry)

    def names(self) -> list[str]:
        return list(self._entries)

    def build(self) -> bytes:
        """The gzip-compressed archive (mtime 0 everywhere: same inputs, same bytes)."""
        archive = cpio.write_newc(list(self._entries.values()))
        compressed = bytearray(gzip.compress(archive, compresslevel=GZIP_LEVEL, mtime=0))
        # The header's OS byte is 3 (Unix) up to Python 3.12 and 255 (unknown) from 3.13:
        # one value for every Python, so the same inputs give the same bytes everywhere.
        compressed[GZIP_OS_OFFSET] = GZIP_OS_UNKNOWN
        return bytes(compressed)


def busybox_initramfs(
    busybox: bytes,
    init_script: str = INIT_SCRIPT,
    extra_entries: Iterable[cpio.CpioEntry] = (),
) -> Initramfs:
    """The base guest image: static busybox, ``/init``, the mount points and ``/dev/console``."""
    image = Initramfs()
    for name in BASE_DIRECTORIES:
        image.add_directory(name, 0o700 if name == "root" else 0o755)
    image.add_directory("tmp", 0o1777)
    image.add_char_device("dev/console", CONSOLE_MAJOR, CONSOLE_MINOR)
    image.add_file(BUSYBOX_PATH, busybox, 0o755)
    image.add_symlink("bin/sh", "busybox")
    image.add_file("init", init_script.encode(), 0o755)
    image.add_entries(extra_entries)
    return image


def write_busybox_initramfs(busybox_path: Path, output: Path, init_script: str = INIT_SCRIPT) -> int:
    """Build the base image from a busybox binary on disk into ``output``; returns its size."""
    data = busybox_initramfs(Path(busybox_path).read_bytes(), init_script).build()
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(output)
    return len(data)
