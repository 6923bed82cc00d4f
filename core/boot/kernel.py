"""Loading an arm64 Linux kernel ``Image`` into guest memory.

The Image format is the kernel's (Documentation/arch/arm64/booting.rst): a 64-byte
header with ``text_offset`` (u64 at 0x08), ``image_size`` (u64 at 0x10), ``flags``
(u64 at 0x18) and the magic ``"ARM\\x64"`` (u32 at 0x38). As in Firecracker
(linux-loader's ``PE`` loader) the whole file is copied to
``KERNEL_BASE + text_offset`` and vCPU 0 starts there; an ``image_size`` of 0
means a pre-3.17 kernel whose text_offset is 0x80000.

Accepted beyond Firecracker: a gzip-compressed Image (``Image.gz``) and an EFI
"zboot" image with a gzip payload; both are decompressed with a size cap.
Anything else raises :class:`KernelImageError` saying what the file looks like.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from petard.core import layout

IMAGE_HEADER_SIZE = 64
IMAGE_MAGIC = 0x644D_5241  # b"ARM\x64" little-endian
IMAGE_MAGIC_OFFSET = 0x38
LEGACY_TEXT_OFFSET = 0x8_0000
_HEADER_FIELDS = struct.Struct("<8xQQQ")  # text_offset, image_size, flags

GZIP_MAGIC = b"\x1f\x8b"
MAX_DECOMPRESSED_SIZE = 256 * layout.MiB
_DECOMPRESS_CHUNK = 4 * layout.MiB

# EFI zboot (drivers/firmware/efi/libstub/zboot-header.S): "MZ", "zimg" at 4,
# payload offset/size (u32) at 8/12, compression name (NUL-padded) at 0x18.
_ZBOOT_MARKER = b"zimg"
_ZBOOT_FIELDS = struct.Struct("<4x4sII8x32s")

# Signatures of files that are not an arm64 Image, for the error message.
_OTHER_FORMATS = (
    (0, b"\x7fELF", "an ELF file (vmlinux?); boot the arm64 Image (arch/arm64/boot/Image) instead"),
    (0, b"\x28\xb5\x2f\xfd", "zstd-compressed; only gzip is supported, decompress it first"),
    (0, b"\xfd7zXZ\x00", "xz-compressed; only gzip is supported, decompress it first"),
    (0, b"\x02\x21\x4c\x18", "lz4-compressed; only gzip is supported, decompress it first"),
    (0, b"BZh", "bzip2-compressed; only gzip is supported, decompress it first"),
    (0x202, b"HdrS", "an x86 bzImage, not an arm64 kernel"),
)


class KernelImageError(ValueError):
    """The kernel file is not a loadable arm64 Image (the API answers 400)."""


class WritableGuestMemory(Protocol):
    base: int
    size: int

    def contains(self, gpa: int, length: int) -> bool: ...

    def view(self, gpa: int, length: int) -> memoryview: ...


@dataclass(frozen=True)
class ImageHeader:
    text_offset: int
    image_size: int
    flags: int

    @classmethod
    def parse(cls, data: bytes, source: str = "kernel") -> "ImageHeader":
        if len(data) < IMAGE_HEADER_SIZE:
            raise KernelImageError(f"{source}: {len(data)} bytes is too short for an arm64 Image header")
        (magic,) = struct.unpack_from("<I", data, IMAGE_MAGIC_OFFSET)
        if magic != IMAGE_MAGIC:
            raise KernelImageError(f"{source}: not an arm64 Image: {_describe(data)}")
        return cls(*_HEADER_FIELDS.unpack_from(data))

    @property
    def effective_text_offset(self) -> int:
        return LEGACY_TEXT_OFFSET if self.image_size == 0 else self.text_offset


@dataclass(frozen=True)
class LoadedKernel:
    """Where the kernel went. ``entry`` is vCPU 0's PC (the load address)."""

    load_address: int
    file_size: int
    header: ImageHeader
    compressed: bool

    @property
    def entry(self) -> int:
        return self.load_address

    @property
    def end(self) -> int:
        """First byte past the kernel's footprint (the file, or image_size if larger: BSS)."""
        return self.load_address + max(self.file_size, self.header.image_size)


def _describe(data: bytes) -> str:
    for offset, signature, description in _OTHER_FORMATS:
        if data[offset : offset + len(signature)] == signature:
            return description
    if data[:2] == b"MZ":
        return "a PE/EFI executable without the arm64 Image magic at 0x38"
    return f"no 'ARM\\x64' magic at offset {IMAGE_MAGIC_OFFSET:#x}"


def load_kernel(
    memory: WritableGuestMemory,
    path: str | os.PathLike[str],
    max_decompressed_size: int = MAX_DECOMPRESSED_SIZE,
) -> LoadedKernel:
    """Copy the kernel at ``path`` into ``memory`` at KERNEL_BASE + text_offset."""
    _check_dram(memory)
    source = os.fspath(path)
    try:
        with open(path, "rb") as file:
            head = file.read(max(IMAGE_HEADER_SIZE, 0x206))
            file.seek(0)
            if head[:2] == GZIP_MAGIC:
                return _load_gzip(memory, file, source, 0, None, max_decompressed_size)
            if head[:2] == b"MZ" and head[4:8] == _ZBOOT_MARKER:
                return _load_zboot(memory, file, head, source, max_decompressed_size)
            header = ImageHeader.parse(head, source)
            size = os.fstat(file.fileno()).st_size
            load_address = _placement(memory, header, size, source)
            with memory.view(load_address, size) as destination:
                copied = file.readinto(destination)
            if copied != size:
                raise KernelImageError(f"{source}: file shrank while it was being read")
    except OSError as error:
        raise KernelImageError(f"cannot read kernel {source}: {error.strerror or error}") from error
    return LoadedKernel(load_address, size, header, compressed=False)


def _load_zboot(memory: WritableGuestMemory, file: BinaryIO, head: bytes, source: str, cap: int) -> LoadedKernel:
    _marker, payload_offset, payload_size, compression = _ZBOOT_FIELDS.unpack_from(head)
    name = compression.rstrip(b"\0").decode("ascii", "replace")
    if name != "gzip":
        raise KernelImageError(f"{source}: EFI zboot image compressed with {name!r}; only gzip is supported")
    return _load_gzip(memory, file, source, payload_offset, payload_size, cap)


class _StreamingImageWriter:
    """Receives decompressed output: holds it until the header is known, then writes in place."""

    def __init__(self, memory: WritableGuestMemory, source: str, cap: int) -> None:
        self.memory, self.source, self.cap = memory, source, cap
        self.pending = bytearray()
        self.header: ImageHeader | None = None
        self.load_address = self.written = 0
        self.limit = cap

    def feed(self, out: bytes) -> None:
        if self.header is None:
            self.pending += out
            if len(self.pending) < IMAGE_HEADER_SIZE:
                return
            self.header = ImageHeader.parse(bytes(self.pending), f"{self.source} (decompressed)")
            self.load_address = _placement(self.memory, self.header, 0, self.source)
            self.limit = min(self.cap, self.memory.base + self.memory.size - self.load_address)
            out, self.pending = bytes(self.pending), bytearray()
        if self.written + len(out) > self.limit:
            raise KernelImageError(
                f"{self.source}: decompressed kernel exceeds {self.limit} bytes "
                f"(the cap or the guest memory above {self.load_address:#x})"
            )
        with self.memory.view(self.load_address + self.written, len(out)) as destination:
            destination[:] = out
        self.written += len(out)


def _load_gzip(
    memory: WritableGuestMemory, file: BinaryIO, source: str, offset: int, length: int | None, cap: int
) -> LoadedKernel:
    """Stream-decompress ``length`` bytes (or the rest of the file) from ``offset`` into guest memory."""
    file.seek(offset)
    remaining = length
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    writer = _StreamingImageWriter(memory, source, cap)
    try:
        while not decompressor.eof and (remaining is None or remaining > 0):
            chunk = file.read(_DECOMPRESS_CHUNK if remaining is None else min(_DECOMPRESS_CHUNK, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            while not decompressor.eof:
                # Bounded output per call; an empty call drains what zlib still holds.
                out = decompressor.decompress(chunk, _DECOMPRESS_CHUNK)
                chunk = decompressor.unconsumed_tail
                if out:
                    writer.feed(out)
                elif not chunk:
                    break
    except zlib.error as error:
        raise KernelImageError(f"{source}: corrupt gzip data: {error}") from None
    if not decompressor.eof:
        raise KernelImageError(f"{source}: gzip stream is truncated")
    if writer.header is None:
        raise KernelImageError(
            f"{source}: decompressed to {len(writer.pending)} bytes, too short for an arm64 Image"
        )
    return LoadedKernel(writer.load_address, writer.written, writer.header, compressed=True)


def _placement(memory: WritableGuestMemory, header: ImageHeader, size: int, source: str) -> int:
    load_address = layout.kernel_load_address(header.effective_text_offset)
    if not memory.contains(load_address, max(size, 1)):
        raise KernelImageError(
            f"{source}: a kernel of {size} bytes at {load_address:#x} does not fit in "
            f"{memory.size // layout.MiB} MiB of guest memory"
        )
    return load_address


def _check_dram(memory: WritableGuestMemory) -> None:
    if memory.base != layout.DRAM_START:
        raise ValueError(f"guest memory starts at {memory.base:#x}, not at DRAM_START {layout.DRAM_START:#x}")
