"""Where the controller puts virtio devices: upstream's order (block devices root first,
then entropy, then serial and RTC), slots from 0x4000_3000, GSIs from 0; the root drive's
command-line append; and the resources' device support list."""

from __future__ import annotations

from types import SimpleNamespace

from petard.core import layout
from petard.core.boot.cmdline import guest_cmdline
from petard.core.clock import VirtualClock
from petard.core.machine import Machine
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus
from petard.core.plugins import create_plugin_manager
from petard.core.resources import VmResources
from petard.core.vmm import machine_devices, root_device


def drive(drive_id, path, root=False, read_only=False, partuuid=None, cache_type="Unsafe"):
    return SimpleNamespace(drive_id=drive_id, path_on_host=str(path), is_root_device=root,
                           is_read_only=read_only, partuuid=partuuid, cache_type=cache_type,
                           rate_limiter=None)


def resources_with(tmp_path, *drives, entropy=True):
    resources = VmResources()
    for item in drives:
        resources.set_drive(item)
    if entropy:
        resources.entropy = SimpleNamespace(rate_limiter=None)
    return resources


def place(placements):
    memory = GuestMemory(layout.DRAM_START, 1 << 20)
    devices, nodes = Machine._place_devices(placements, create_plugin_manager(autoload=False), memory,
                                            MmioBus(), VirtualClock.manual())
    return memory, devices, nodes


def test_upstream_slot_and_gsi_order(tmp_path, disk):
    resources = resources_with(tmp_path, drive("data", disk), drive("rootfs", disk, root=True))
    memory, devices, nodes = place(machine_devices(resources, has_console=True, console=None))
    try:
        summary = [(d.name, d.base, tuple(line.gsi for line in d.irqs)) for d in devices]
        assert summary == [
            ("drive:rootfs", 0x4000_3000, (0,)),
            ("drive:data", 0x4000_4000, (1,)),
            ("entropy", 0x4000_5000, (2,)),
            ("serial", layout.SERIAL_START, (3,)),
            ("rtc", layout.RTC_START, (4,)),
        ]
        virtio_nodes = [n.name for n in nodes if n.name.startswith("virtio_mmio")]
        assert virtio_nodes == ["virtio_mmio@40003000", "virtio_mmio@40004000", "virtio_mmio@40005000"]
    finally:
        for placed in devices:
            placed.device.stop()
        memory.close()


def test_without_console_the_rtc_follows_the_virtio_devices(tmp_path, disk):
    resources = resources_with(tmp_path, drive("rootfs", disk, root=True), entropy=False)
    placements = machine_devices(resources, has_console=False, console=None)
    assert [p.type_name for p in placements] == ["virtio-blk", "rtc"]


def test_read_only_and_writeback_options_reach_the_device(tmp_path, disk):
    resources = resources_with(tmp_path, drive("rootfs", disk, root=True, read_only=True, cache_type="Writeback"),
                               entropy=False)
    [block, _] = machine_devices(resources, has_console=False, console=None)
    assert block.options["read_only"] is True and block.options["cache_type"] == "Writeback"


def test_root_device_cmdline_append(tmp_path, disk):
    rw = resources_with(tmp_path, drive("rootfs", disk, root=True), entropy=False)
    assert str(guest_cmdline("console=ttyS0", root_device=root_device(rw))) == \
        "console=ttyS0 pci=off root=/dev/vda rw earlycon=uart,mmio,0x40002000"
    ro = resources_with(tmp_path, drive("rootfs", disk, root=True, read_only=True, partuuid="0eaa91a0-01"),
                        entropy=False)
    assert "root=PARTUUID=0eaa91a0-01 ro" in str(guest_cmdline("reboot=k", root_device=root_device(ro)))
    data_only = resources_with(tmp_path, drive("data", disk), entropy=False)
    assert root_device(data_only) is None


def test_drives_and_entropy_are_supported_but_vhost_user_drives_are_not(tmp_path, disk):
    resources = resources_with(tmp_path, drive("rootfs", disk, root=True))
    assert resources.unsupported_devices() == []
    socket_drive = SimpleNamespace(drive_id="vhost", path_on_host=None, is_root_device=False)
    resources.drives.append(socket_drive)
    assert resources.unsupported_devices() == ["drives"]
