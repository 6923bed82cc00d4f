"""Placing the initrd and the device tree in guest memory, and the whole boot payload at once.

Order matters because the FDT describes the initrd: load the kernel, load the
initrd (just below the FDT window), build the FDT with the initrd's range, write
the FDT at ``layout.fdt_address``. :func:`load_boot_payload` does exactly that and
returns what the vCPUs need (vCPU 0: PC = ``entry``, x0 = ``fdt_address``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from petard.core import layout
from petard.core.boot.kernel import LoadedKernel, WritableGuestMemory, load_kernel
from petard.core.layout import Region


class InitrdError(ValueError):
    """The initrd cannot be read or placed."""


class FdtPlacementError(ValueError):
    """The device tree blob does not fit where it must go."""


def load_initrd(
    memory: WritableGuestMemory,
    path: str | os.PathLike[str],
    kernel: LoadedKernel | None = None,
) -> Region:
    """Copy the initrd just below the FDT window; returns its (address, size).

    With ``kernel`` given, also refuse an initrd that would overwrite the kernel
    (upstream does not check; the guest would crash in a confusing way).
    """
    source = os.fspath(path)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            try:
                address = layout.initrd_address(memory.size, size)
            except layout.LayoutError as error:
                raise InitrdError(f"{source}: {error}") from None
            if kernel is not None and address < kernel.end:
                raise InitrdError(
                    f"{source}: an initrd of {size} bytes at {address:#x} would overlap the kernel "
                    f"(which ends at {kernel.end:#x}); give the guest more memory"
                )
            if not memory.contains(address, max(size, 1)):
                raise InitrdError(f"{source}: {size} bytes at {address:#x} are outside guest memory")
            with memory.view(address, size) as destination:
                copied = file.readinto(destination)
            if copied != size:
                raise InitrdError(f"{source}: file shrank while it was being read")
    except OSError as error:
        raise InitrdError(f"cannot read initrd {source}: {error.strerror or error}") from error
    return Region(address, size)


def load_fdt(memory: WritableGuestMemory, dtb: bytes) -> int:
    """Write the DTB at ``layout.fdt_address``; returns that address (vCPU 0's x0)."""
    if len(dtb) > layout.FDT_MAX_SIZE:
        raise FdtPlacementError(f"device tree of {len(dtb)} bytes exceeds {layout.FDT_MAX_SIZE}")
    address = layout.fdt_address(memory.size)
    if not memory.contains(address, len(dtb)):
        raise FdtPlacementError(f"device tree of {len(dtb)} bytes at {address:#x} is outside guest memory")
    with memory.view(address, len(dtb)) as destination:
        destination[:] = dtb
    return address


@dataclass(frozen=True)
class BootPayload:
    """Everything placed in memory for boot."""

    kernel: LoadedKernel
    initrd: Region | None
    fdt_address: int
    fdt_size: int

    @property
    def entry(self) -> int:
        return self.kernel.entry


def load_boot_payload(
    memory: WritableGuestMemory,
    kernel_path: str | os.PathLike[str],
    initrd_path: str | os.PathLike[str] | None,
    make_fdt: Callable[[Region | None], bytes],
) -> BootPayload:
    """Kernel, then initrd, then ``make_fdt(initrd_region)`` written at the FDT address.

    ``make_fdt`` is typically ``lambda initrd: machine_fdt(..., initrd=initrd)``.
    """
    kernel = load_kernel(memory, kernel_path)
    initrd = load_initrd(memory, initrd_path, kernel) if initrd_path is not None else None
    fdt_address = layout.fdt_address(memory.size)
    if fdt_address < kernel.end:
        raise FdtPlacementError(
            f"the device tree at {fdt_address:#x} would overlap the kernel (which ends at "
            f"{kernel.end:#x}); give the guest more memory"
        )
    dtb = make_fdt(initrd)
    return BootPayload(kernel, initrd, load_fdt(memory, dtb), len(dtb))
