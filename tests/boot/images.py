"""Synthetic arm64 kernel files for loader tests (headers per Documentation/arch/arm64/booting.rst)."""

from __future__ import annotations

import gzip
import struct

ARM64_MAGIC = b"ARM\x64"
BRANCH_OVER_HEADER = struct.pack("<I", 0x1400_0010)  # b +0x40


def arm64_image(body: bytes = b"\xAA" * 4032, text_offset: int = 0, image_size: int | None = None) -> bytes:
    """A 64-byte Image header followed by ``body``; image_size defaults to the file size."""
    total = 64 + len(body)
    header = BRANCH_OVER_HEADER + b"\0" * 4
    header += struct.pack("<QQQQQQ", text_offset, total if image_size is None else image_size, 0xA, 0, 0, 0)
    header += ARM64_MAGIC + b"\0" * 4
    assert len(header) == 64
    return header + body


def efi_zboot(payload: bytes, compression: bytes = b"gzip") -> bytes:
    """An EFI zboot wrapper: "MZ", "zimg", payload offset/size, compression name at 0x18."""
    offset = 0x200
    header = b"MZ\0\0" + b"zimg" + struct.pack("<II", offset, len(payload)) + b"\0" * 8
    header += compression.ljust(32, b"\0")
    return header.ljust(offset, b"\0") + payload


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)
