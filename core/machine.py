"""The machine builder: a `MachineSpec` becomes guest memory, a bus of devices, a loaded
kernel/initrd/FDT and a backend `Vm`, ready to run.

    machine = Machine.build(MachineSpec(kernel_path=..., initrd_path=..., cmdline=...,
                                        devices=[DevicePlacement("serial", ...)]))
    vm_exit = machine.run()          # blocks; machine.vm.pause()/resume()/stop() from others
    machine.close()

Placement rules: a `DevicePlacement` without an address takes the next free virtio-mmio
slot, without GSIs the next free GSIs (Firecracker's allocation order is the caller's job:
the controller lists the devices in upstream order). The boot timer, when asked for, sits
at its fixed address. The FDT lists the device nodes sorted by address (upstream emits rtc,
uart, then virtio-mmio nodes by address). vCPU i has MPIDR affinity 0 = i.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

from petard.core import layout
from petard.core.arch.pstate import BOOT_PSTATE
from petard.core.backend import (
    DEFAULT_BACKEND, BootRegisters, ExitReason, GicDescription, GicVersion, MachineDescription, MachineState, Vm,
    VmExit, get_backend)
from petard.core.boot.fdt import FdtNode
from petard.core.boot.loader import BootPayload, load_boot_payload
from petard.core.boot.machine_fdt import machine_fdt
from petard.core.clock import VirtualClock
from petard.core.device import Device, DevicePlacement
from petard.core.irq import IrqLine
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus

BOOT_TIMER_TYPE = "boot_timer"


class MachineBuildError(ValueError):
    pass


@dataclass
class MachineSpec:
    kernel_path: str | os.PathLike[str]
    cmdline: str
    initrd_path: str | os.PathLike[str] | None = None
    vcpu_count: int = 1
    mem_size_mib: int = 128
    gic_version: int | None = None      # None: the backend chooses (KVM: what the host has)
    devices: list[DevicePlacement] = field(default_factory=list)
    boot_timer: bool = False
    backend: str = DEFAULT_BACKEND


@dataclass
class PlacedDevice:
    name: str
    type_name: str
    base: int
    irqs: tuple[IrqLine, ...]
    device: Device


def vcpu_mpidrs(vcpu_count: int) -> list[int]:
    return list(range(vcpu_count))


def gic_description(gic_version: int, vcpu_count: int) -> GicDescription:
    if gic_version == GicVersion.V3:
        distributor = layout.gicv3_distributor_region()
        redistributors = layout.gicv3_redistributor_region(vcpu_count)
        return GicDescription(GicVersion.V3, distributor.base, distributor.size,
                              redistributor_base=redistributors.base,
                              redistributor_size=redistributors.size,
                              irq_count=layout.GIC_NR_IRQS)
    if gic_version == GicVersion.V2:
        distributor = layout.gicv2_distributor_region()
        cpu_interface = layout.gicv2_cpu_interface_region()
        return GicDescription(GicVersion.V2, distributor.base, distributor.size,
                              cpu_interface_base=cpu_interface.base,
                              cpu_interface_size=cpu_interface.size,
                              irq_count=layout.GIC_NR_IRQS)
    raise MachineBuildError(f"GIC version {gic_version} is not supported (2 or 3)")


class _Allocator:
    """Next free virtio-mmio slot and GSI, skipping what explicit placements use."""

    def __init__(self, placements: Sequence[DevicePlacement]):
        self.used_addresses = {p.address for p in placements if p.address is not None}
        self.used_gsis = {gsi for p in placements for gsi in (p.gsis or ())}
        self.slot = 0
        self.gsi = 0

    def address(self) -> int:
        while True:
            address = layout.virtio_mmio_address(self.slot)
            self.slot += 1
            if address not in self.used_addresses:
                self.used_addresses.add(address)
                return address

    def gsis(self, count: int) -> tuple[int, ...]:
        result = []
        while len(result) < count:
            if self.gsi >= layout.GSI_COUNT:
                raise MachineBuildError("no free GSIs left")
            if self.gsi not in self.used_gsis:
                result.append(self.gsi)
                self.used_gsis.add(self.gsi)
            self.gsi += 1
        return tuple(result)


class Machine:
    """A built machine: memory, bus, devices, loaded payload, and the backend's Vm."""

    def __init__(self, spec: MachineSpec, memory: GuestMemory, bus: MmioBus,
                 clock: VirtualClock, devices: list[PlacedDevice], payload: BootPayload, vm: Vm,
                 description: MachineDescription):
        self.spec = spec
        self.memory = memory
        self.bus = bus
        self.clock = clock
        self.devices = devices
        self.payload = payload
        self.vm = vm
        self.description = description
        self.exit: VmExit | None = None
        self._next_vm: Vm | None = None

    @classmethod
    def build(cls, spec: MachineSpec, plugin_manager=None) -> Machine:
        if spec.vcpu_count < 1:
            raise MachineBuildError("a machine needs at least one vCPU")
        if spec.gic_version not in (None, *GicVersion):
            raise MachineBuildError(f"GIC version {spec.gic_version} is not supported (2 or 3)")
        backend = get_backend(spec.backend)
        gic_version = backend.gic_version(spec.gic_version)
        gic = gic_description(gic_version, spec.vcpu_count)
        if plugin_manager is None:
            from petard.core.plugins import create_plugin_manager
            plugin_manager = create_plugin_manager()
        memory = GuestMemory(layout.DRAM_START, spec.mem_size_mib * layout.MiB)
        bus = MmioBus()
        clock = VirtualClock()
        placements = list(spec.devices)
        if spec.boot_timer:
            placements.insert(0, DevicePlacement(BOOT_TIMER_TYPE, BOOT_TIMER_TYPE,
                                                 layout.BOOT_TIMER_START, ()))
        placements += plugin_manager.machine_devices(spec)
        devices, nodes = cls._place_devices(placements, plugin_manager, memory, bus, clock)
        mpidrs = vcpu_mpidrs(spec.vcpu_count)
        payload = load_boot_payload(
            memory, spec.kernel_path, spec.initrd_path,
            lambda initrd: machine_fdt(vcpu_mpidrs=mpidrs, mem_size=memory.size,
                                       cmdline=spec.cmdline, gic_version=gic_version,
                                       initrd=initrd, device_nodes=nodes))
        description = MachineDescription(
            memory=memory, mmio_bus=bus, vcpu_count=spec.vcpu_count, vcpu_mpidrs=mpidrs,
            gic=gic,
            boot=BootRegisters(pc=payload.entry, x0=payload.fdt_address, pstate=BOOT_PSTATE),
            device_events=clock,
            kernel_region=(payload.kernel.load_address,
                           payload.kernel.end - payload.kernel.load_address))
        vm = backend.create_vm(description)
        machine = cls(spec, memory, bus, clock, devices, payload, vm, description)
        machine._connect_lines()
        return machine

    def _connect_lines(self) -> None:
        for placed in self.devices:
            for line in placed.irqs:
                line.connect(self.vm.interrupt_sink)

    @staticmethod
    def _place_devices(placements, plugin_manager, memory, bus, clock):
        allocator = _Allocator(placements)
        devices: list[PlacedDevice] = []
        nodes: list[tuple[int, FdtNode]] = []
        names: set[str] = set()
        for index, placement in enumerate(placements):
            device_type = plugin_manager.device_type(placement.type_name)
            name = placement.name or f"{placement.type_name}{index}"
            if name in names:
                raise MachineBuildError(f"two devices are named {name!r}")
            names.add(name)
            base = placement.address if placement.address is not None else allocator.address()
            gsis = placement.gsis if placement.gsis is not None \
                else allocator.gsis(device_type.cls.irq_count)
            if len(gsis) != device_type.cls.irq_count:
                raise MachineBuildError(f"device {name!r} needs {device_type.cls.irq_count} "
                                        f"GSIs, got {len(gsis)}")
            irqs = tuple(IrqLine(gsi) for gsi in gsis)
            device = device_type.create(instance_name=name, irqs=irqs, memory=memory,
                                        clock=clock, options=placement.options,
                                        from_config=placement.from_config)
            bus.add(base, device.mmio_size, device, name)
            nodes += [(base, node) for node in device.fdt_nodes(base, irqs)]
            devices.append(PlacedDevice(name, placement.type_name, base, irqs, device))
        nodes.sort(key=lambda item: item[0])
        return devices, [node for _, node in nodes]

    def device(self, name: str) -> Device:
        for placed in self.devices:
            if placed.name == name:
                return placed.device
        raise KeyError(name)

    def run(self) -> VmExit:
        """Start the devices, run the guest to its exit, stop the devices."""
        for placed in self.devices:
            placed.device.start()
        try:
            self.exit = self.vm.run()
            while self._next_vm is not None and self.exit.reason is ExitReason.STOPPED:
                previous, self.vm, self._next_vm = self.vm, self._next_vm, None
                previous.close()
                self._connect_lines()       # the devices' lines drive the new controller
                self.exit = self.vm.run()
        finally:
            for placed in self.devices:
                placed.device.stop()
        return self.exit

    def move_to_new_vm(self, backend: str | None = None) -> MachineState:
        """Pause the guest, save its vCPUs' and interrupt controller's state, and go on with
        it on a new VM (see `continue_on_new_vm`); returns the state that moved."""
        vm = self.vm
        vm.pause()
        try:
            state = vm.save_state()
        except BaseException:
            vm.resume()
            raise
        self.continue_on_new_vm(state, backend)
        return state

    def continue_on_new_vm(self, state: MachineState, backend: str | None = None) -> None:
        """Go on with the paused guest from `state` on a VM created afresh from the same
        description (the same memory, bus and devices; on the backend named, by default the
        machine's own). Only what the neutral state holds carries over, so a guest that goes
        on unharmed shows it is the whole machine. Call from another thread while `run()`
        runs; on an error the old VM stays, paused."""
        successor = get_backend(backend or self.spec.backend).create_vm(self.description)
        try:
            successor.restore_state(state)
        except BaseException:
            successor.close()
            raise
        self._next_vm = successor
        self.vm.stop()

    def close(self) -> None:
        self.vm.close()
