"""Guest physical memory: one anonymous host mapping backing one contiguous DRAM range.

Backends map the same host pages into the guest (`host_address` is what Unicorn's
`mem_map_ptr` and KVM's `userspace_addr` want), so reads and writes here are the guest's
view, with no copying between the VMM and the vCPUs. Device models (virtqueues, DMA) use
the typed accessors or `view()` for zero-copy access.

All addresses are guest physical addresses (GPAs); values are little-endian like the guest.
"""

from __future__ import annotations

import ctypes
import mmap
import struct

from petard.core.layout import PAGE_SIZE

__all__ = ["GuestMemory", "GuestMemoryError"]

# Linux <sys/mman.h> value on x86-64 and arm64; the mmap module does not export it. Without
# it a large guest's memory would be charged against the host's commit limit up front.
_MAP_NORESERVE = 0x4000

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GuestMemoryError(Exception):
    """A guest-physical access fell (partly) outside guest memory."""


class GuestMemory:
    """Guest RAM `[base, base + size)` backed by one page-aligned anonymous mapping."""

    __slots__ = ("base", "size", "end", "host_address", "_mmap", "_view", "_anchor")

    def __init__(self, base: int, size: int) -> None:
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"guest memory size {size:#x} must be a positive multiple of {PAGE_SIZE:#x}")
        if base < 0 or base % PAGE_SIZE:
            raise ValueError(f"guest memory base {base:#x} must be page-aligned")
        self.base = base
        self.size = size
        self.end = base + size
        self._mmap = mmap.mmap(
            -1,
            size,
            flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
        )
        # The ctypes object keeps a buffer export on the mapping: it pins the address for as
        # long as this object lives (the mapping cannot be closed or moved under a backend).
        self._anchor = ctypes.c_char.from_buffer(self._mmap)
        self.host_address: int = ctypes.addressof(self._anchor)
        self._view = memoryview(self._mmap)

    def __repr__(self) -> str:
        return f"GuestMemory(base={self.base:#x}, size={self.size:#x})"

    def contains(self, gpa: int, length: int = 1) -> bool:
        """True when `[gpa, gpa + length)` lies entirely inside guest memory."""
        return length >= 0 and self.base <= gpa and gpa + length <= self.end

    def _offset(self, gpa: int, length: int) -> int:
        offset = gpa - self.base
        if offset < 0 or length < 0 or offset + length > self.size:
            raise GuestMemoryError(
                f"guest access [{gpa:#x}, +{length:#x}) outside guest memory "
                f"[{self.base:#x}, {self.end:#x})"
            )
        return offset

    def read(self, gpa: int, length: int) -> bytes:
        """Copy `length` bytes starting at `gpa`."""
        offset = self._offset(gpa, length)
        return self._mmap[offset : offset + length]

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        """Store `data` starting at `gpa`."""
        length = len(data)
        offset = self._offset(gpa, length)
        self._view[offset : offset + length] = data

    def view(self, gpa: int, length: int) -> memoryview:
        """A writable zero-copy window onto guest memory (valid until `close()`)."""
        offset = self._offset(gpa, length)
        return self._view[offset : offset + length]

    def read_u16(self, gpa: int) -> int:
        return _U16.unpack_from(self._mmap, self._offset(gpa, 2))[0]

    def read_u32(self, gpa: int) -> int:
        return _U32.unpack_from(self._mmap, self._offset(gpa, 4))[0]

    def read_u64(self, gpa: int) -> int:
        return _U64.unpack_from(self._mmap, self._offset(gpa, 8))[0]

    def write_u16(self, gpa: int, value: int) -> None:
        _U16.pack_into(self._mmap, self._offset(gpa, 2), value)

    def write_u32(self, gpa: int, value: int) -> None:
        _U32.pack_into(self._mmap, self._offset(gpa, 4), value)

    def write_u64(self, gpa: int, value: int) -> None:
        _U64.pack_into(self._mmap, self._offset(gpa, 8), value)

    def discard(self, gpa: int, length: int) -> int:
        """Give the whole pages inside `[gpa, gpa + length)` back to the host: they read as
        zero afterwards, and the host frees their memory (a balloon's inflated or reported
        pages). Returns how many bytes were discarded (partial pages at either end are kept)."""
        offset = self._offset(gpa, length)
        start = -(-offset // PAGE_SIZE) * PAGE_SIZE
        end = (offset + length) // PAGE_SIZE * PAGE_SIZE
        if end <= start:
            return 0
        self._mmap.madvise(mmap.MADV_DONTNEED, start, end - start)
        return end - start

    def close(self) -> None:
        """Unmap guest memory. Every `view()` handed out must have been released first."""
        self._view.release()
        del self._anchor
        self._mmap.close()
