"""Placing initrd and FDT, and the whole boot payload with the real Debian kernel and initrd."""

from __future__ import annotations

import pytest

from petard.core import layout
from petard.core.boot.fdt import decode_u64s, parse_dtb
from petard.core.boot.kernel import load_kernel
from petard.core.boot.loader import FdtPlacementError, InitrdError, load_boot_payload, load_fdt, load_initrd
from petard.core.boot.machine_fdt import machine_fdt
from petard.core.layout import Region

from .images import arm64_image


def test_initrd_lands_just_below_the_fdt(make_memory, tmp_path):
    data = bytes(range(256)) * 40 + b"tail"
    (tmp_path / "initrd").write_bytes(data)
    memory = make_memory(64)
    region = load_initrd(memory, tmp_path / "initrd")
    assert region == Region(layout.fdt_address(64 * layout.MiB) - 3 * 4096, len(data))
    assert memory.read(region.base, region.size) == data


def test_initrd_overlapping_the_kernel_is_refused(make_memory, tmp_path):
    memory = make_memory(8)
    (tmp_path / "Image").write_bytes(arm64_image(image_size=3 * layout.MiB))
    kernel = load_kernel(memory, tmp_path / "Image")
    (tmp_path / "initrd").write_bytes(bytes(2 * layout.MiB))
    with pytest.raises(InitrdError, match="would overlap the kernel"):
        load_initrd(memory, tmp_path / "initrd", kernel)
    (tmp_path / "huge").write_bytes(bytes(7 * layout.MiB))
    with pytest.raises(InitrdError, match="does not fit below the device tree"):
        load_initrd(memory, tmp_path / "huge")
    with pytest.raises(InitrdError, match="cannot read initrd"):
        load_initrd(memory, tmp_path / "absent")


def test_fdt_placement_and_size_limit(make_memory):
    memory = make_memory(32)
    assert load_fdt(memory, b"\xd0\x0d\xfe\xed" + bytes(60)) == layout.DRAM_START + 30 * layout.MiB
    assert memory.read(layout.DRAM_START + 30 * layout.MiB, 4) == b"\xd0\x0d\xfe\xed"
    with pytest.raises(FdtPlacementError, match="exceeds"):
        load_fdt(memory, bytes(layout.FDT_MAX_SIZE + 1))


def test_boot_payload_with_the_debian_kernel_and_initrd(guest_artifacts, make_memory):
    memory = make_memory(128)
    seen_initrd = []

    def make_fdt(initrd):
        seen_initrd.append(initrd)
        return machine_fdt(vcpu_mpidrs=[0x8000_0000], mem_size=memory.size, cmdline="console=ttyS0",
                           gic_version=3, initrd=initrd)  # fmt: skip

    payload = load_boot_payload(memory, guest_artifacts.kernel, guest_artifacts.initrd, make_fdt)
    initrd_size = guest_artifacts.initrd.stat().st_size
    assert payload.entry == 0x8020_0000
    assert payload.fdt_address == 0x87E0_0000
    assert payload.initrd == seen_initrd[0] == Region(layout.initrd_address(memory.size, initrd_size), initrd_size)
    assert memory.read(payload.initrd.base, 2) == b"\x1f\x8b"  # the gzip'd cpio, in place

    tree = parse_dtb(memory.read(payload.fdt_address, payload.fdt_size)).root
    chosen = tree.find("chosen")
    assert decode_u64s(chosen.properties["linux,initrd-start"]) == (payload.initrd.base,)
    assert decode_u64s(chosen.properties["linux,initrd-end"]) == (payload.initrd.end,)
    assert chosen.properties["bootargs"] == b"console=ttyS0\0"


def test_payload_refuses_a_guest_too_small_for_kernel_and_fdt(guest_artifacts, make_memory):
    memory = make_memory(34)  # the Debian kernel's image_size is about 32 MiB
    with pytest.raises(FdtPlacementError, match="would overlap the kernel"):
        load_boot_payload(memory, guest_artifacts.kernel, None, lambda initrd: b"")
