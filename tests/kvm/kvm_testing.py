"""Helpers for the KVM tests: the skip rule, the guest programs, a test VM around one.

These tests need /dev/kvm of an aarch64 host. On any other machine they are skipped with
the reason; inside the emulated host (tests/kvm_nested) `run_in_host.py` treats a skip as
a failure, so the nested run cannot pass without really exercising KVM.
"""

from __future__ import annotations

import os
import platform
import unittest
from pathlib import Path

from petard.core import layout
from petard.core.backend import BootRegisters, GicVersion, MachineDescription
from petard.core.clock import VirtualClock
from petard.core.machine import gic_description
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus

import guest_programs

KVM_DEVICE = "/dev/kvm"
PROGRAMS_ENV = "PETARD_GUEST_PROGRAMS"
GIC_ENV = "PETARD_EXPECTED_GIC"        # the emulated host's GIC version, set by its /init
BOOT_PSTATE = 0x3C5
TEST_RAM_BYTES = 2 * layout.MiB


def kvm_usable() -> bool:
    return platform.machine() in ("aarch64", "arm64") and os.access(KVM_DEVICE, os.R_OK | os.W_OK)


requires_kvm = unittest.skipUnless(kvm_usable(), "needs /dev/kvm on an aarch64 host (run tests/kvm_nested)")


def host_gic() -> GicVersion:
    """The vGIC version this host's KVM offers (v3 first)."""
    from petard.backends.kvm.backend import open_kvm
    from petard.backends.kvm.vgic import probe_gic_version

    system = open_kvm()
    try:
        vm = system.create_vm()
        try:
            return probe_gic_version(vm)
        finally:
            vm.close()
    finally:
        system.close()


def expected_gic_version() -> GicVersion | None:
    value = os.environ.get(GIC_ENV)
    return GicVersion(int(value)) if value else None


def program(name: str) -> bytes:
    folder = os.environ.get(PROGRAMS_ENV)
    if not folder:
        raise unittest.SkipTest(f"${PROGRAMS_ENV} is not set (the nested builder assembles the guest programs)")
    return (Path(folder) / f"{name}.bin").read_bytes()


class RecordingDevice:
    """An MMIO device that records writes and answers reads with `read_value`."""

    mmio_size = layout.MMIO_LEN

    def __init__(self, read_value: int = 0):
        self.read_value = read_value
        self.writes: list[tuple[int, int, int]] = []
        self.reads: list[tuple[int, int]] = []

    def mmio_read(self, offset: int, size: int) -> int:
        self.reads.append((offset, size))
        return self.read_value

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))


# Guest RAM of every test VM stays mapped until the process ends. In the emulated host
# (Debian 6.1 KVM under QEMU 7.2 TCG), a VM whose RAM reuses pages freed by an earlier VM
# of the same process was seen executing and reading the earlier VM's contents (root cause
# not isolated; petard itself runs one VM per process). Never freeing them avoids reuse.
_RETIRED_GUEST_MEMORY: list[GuestMemory] = []


def make_machine(program_name: str, gic_version: GicVersion, *, x0: int = 0, vcpu_count: int = 1,
                 device: RecordingDevice | None = None, clock: VirtualClock | None = None):
    """A MachineDescription running `program_name` from the start of a small RAM, with
    `device` at the test device window. Returns (description, device)."""
    memory = GuestMemory(guest_programs.PROGRAM_BASE, TEST_RAM_BYTES)
    _RETIRED_GUEST_MEMORY.append(memory)
    memory.write(guest_programs.PROGRAM_BASE, program(program_name))
    bus = MmioBus()
    device = device or RecordingDevice()
    bus.add(guest_programs.TEST_DEVICE_BASE, device.mmio_size, device, "test-device")
    description = MachineDescription(
        memory=memory, mmio_bus=bus, vcpu_count=vcpu_count, vcpu_mpidrs=list(range(vcpu_count)),
        gic=gic_description(gic_version, vcpu_count),
        boot=BootRegisters(pc=guest_programs.PROGRAM_BASE, x0=x0, pstate=BOOT_PSTATE),
        device_events=clock)
    return description, device
