"""Unpacking tar archives that came from the network, safely on every Python petard runs on.

Python grew tarfile's extraction filters in 3.11.4 (and 3.10.12); Debian 12 ships 3.11.2,
which has none, and extracting there without checks would let a member write anywhere.
So petard applies the same rules itself, on every Python, before a member is extracted:

  * no member lands outside the destination: no absolute names, no ``..`` that climbs out,
    no path through an already extracted link that leads out;
  * links stay inside too: no absolute link targets, no target outside the destination;
  * only files, directories and links: device files and FIFOs are refused;
  * no special permissions: set-uid, set-gid and sticky bits and group/other write bits are
    dropped, the owner can always read and write what it unpacked, and files keep the
    owner of whoever unpacks them.

Where the Python has the filters, its own ``data`` filter runs as well.
"""

from __future__ import annotations

import copy
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

_NATIVE_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class UnsafeMemberError(tarfile.TarError):
    """An archive member that would escape the destination or is not a plain file, directory or link."""


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def checked_member(member: tarfile.TarInfo, destination: Path) -> tarfile.TarInfo:
    """A copy of ``member`` that is safe to extract under ``destination``; raises
    UnsafeMemberError for one that is not."""
    root = os.path.realpath(destination)
    name = member.name
    if os.path.isabs(name):
        raise UnsafeMemberError(f"{name!r}: absolute path")
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(target, root):
        raise UnsafeMemberError(f"{name!r}: outside the destination")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeMemberError(f"{name!r}: a device file or FIFO")
    if member.issym() or member.islnk():
        link = member.linkname
        if os.path.isabs(link):
            raise UnsafeMemberError(f"{name!r}: link to the absolute path {link!r}")
        # A symbolic link is relative to its own directory, a hard link to the archive root.
        base = os.path.dirname(target) if member.issym() else root
        if not _inside(os.path.realpath(os.path.join(base, link)), root):
            raise UnsafeMemberError(f"{name!r}: link {link!r} leads outside the destination")
    safe = copy.copy(member)
    mode = member.mode & 0o755
    if member.isfile() or member.islnk():
        if not mode & stat.S_IXUSR:
            mode &= ~0o111
        mode |= 0o600
    elif member.isdir():
        mode |= 0o700
    safe.mode = mode
    safe.uid, safe.gid = os.getuid(), os.getgid()
    safe.uname = safe.gname = ""
    return safe


def extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
    """Extract one member (checked first) under ``destination``."""
    archive.extract(checked_member(member, destination), destination, **_NATIVE_FILTER)


def extract_all(archive: tarfile.TarFile, destination: Path,
                members: Iterable[tarfile.TarInfo] | None = None) -> None:
    """Extract every member (or ``members``), each checked against what is already on disk
    just before it is written (a link extracted earlier may change where a later name
    leads); an unsafe member raises, leaving what came before it in place."""
    destination.mkdir(parents=True, exist_ok=True)
    for member in archive if members is None else members:
        extract_member(archive, member, destination)
