"""Extra files for a guest initramfs, without rebuilding the base image.

The Linux initramfs unpacker accepts several (each optionally compressed) cpio archives
concatenated in one initrd, later entries overriding earlier ones. So a test or tool that
needs its own programs in the guest writes the cached base initrd followed by a second
archive holding just those files::

    from petard.guest.overlay import ExtraFile, initrd_with_extra_files
    initrd_with_extra_files(artifacts().initrd, {"opt/t/run": ExtraFile(script, 0o755)}, out)

and boots ``out`` (for example with ``rdinit=/opt/t/run`` to run its own init). The base
image and its cache recipe are left untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from petard.guest.initramfs import Initramfs

ARCHIVE_ALIGNMENT = 4  # the unpacker skips zero bytes between archives; keep each one aligned


@dataclass(frozen=True)
class ExtraFile:
    data: bytes
    mode: int = 0o644


def overlay_archive(files: Mapping[str, bytes | ExtraFile]) -> bytes:
    """A gzip-compressed cpio archive of ``files`` (path in the guest -> content); parent
    directories are created as needed."""
    image = Initramfs()
    for name, content in files.items():
        extra = content if isinstance(content, ExtraFile) else ExtraFile(bytes(content))
        image.add_file(name, extra.data, extra.mode)
    return image.build()


def initrd_with_extra_files(base: Path, files: Mapping[str, bytes | ExtraFile], output: Path) -> Path:
    """Write ``base`` followed by an archive of ``files`` to ``output``; returns ``output``."""
    data = Path(base).read_bytes()
    padding = b"\0" * (-len(data) % ARCHIVE_ALIGNMENT)
    output = Path(output)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_bytes(data + padding + overlay_archive(files))
    temporary.replace(output)
    return output
