"""What the microVM will be made of: the configuration accumulated before InstanceStart.

The equivalent of upstream's ``VmResources``. It stores the validated request bodies as
given (objects whose attribute names are Firecracker's field names, e.g. ``drive_id``,
``path_on_host``) and applies upstream's cross-field rules: one root device, drive order
root-first, machine-config merging, files opened when the request arrives. It never
imports the API layer; anything with the right attributes will do.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from petard.core import faults
from petard.core.boot.cmdline import KernelCmdlineError, boot_cmdline

DEFAULT_VCPU_COUNT = 1
DEFAULT_MEM_SIZE_MIB = 128
HUGE_PAGE_CONFIGS_NEEDING_EVEN_MIB = ("2M", "Transparent")


@dataclass
class MachineSettings:
    """The effective machine configuration (upstream ``MachineConfig`` with its defaults)."""

    vcpu_count: int = DEFAULT_VCPU_COUNT
    mem_size_mib: int = DEFAULT_MEM_SIZE_MIB
    smt: bool = False
    cpu_template: str | None = None
    track_dirty_pages: bool = False
    huge_pages: str = "None"

    def updated(self, update: Any) -> "MachineSettings":
        """Merge an update (attributes None where not given) with upstream's checks."""
        vcpu_count = _given(update.vcpu_count, self.vcpu_count)
        smt = _given(update.smt, self.smt)
        if smt:
            raise faults.VmmActionError(faults.SMT_NOT_SUPPORTED)
        if vcpu_count == 0 or vcpu_count > faults.MAX_SUPPORTED_VCPUS:
            raise faults.VmmActionError(faults.INVALID_VCPU_COUNT)
        mem_size_mib = _given(update.mem_size_mib, self.mem_size_mib)
        huge_pages = _enum_value(_given(update.huge_pages, self.huge_pages))
        if mem_size_mib == 0 or (huge_pages in HUGE_PAGE_CONFIGS_NEEDING_EVEN_MIB and mem_size_mib % 2):
            raise faults.VmmActionError(faults.INVALID_MEMORY_SIZE)
        template = _enum_value(update.cpu_template)
        cpu_template = self.cpu_template if template is None else (None if template == "None" else template)
        return MachineSettings(
            vcpu_count=vcpu_count,
            mem_size_mib=mem_size_mib,
            smt=smt,
            cpu_template=cpu_template,
            track_dirty_pages=_given(update.track_dirty_pages, self.track_dirty_pages),
            huge_pages=huge_pages,
        )


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def check_readable(path: str) -> OSError | None:
    """Open ``path`` for reading the way upstream does at PUT time; return the error if any."""
    try:
        with open(path, "rb"):
            return None
    except OSError as error:
        return error


@dataclass
class VmResources:
    """The configuration of one microVM, in the order upstream keeps it."""

    machine: MachineSettings = field(default_factory=MachineSettings)
    boot_source: Any = None
    cpu_config: Any = None
    drives: list[Any] = field(default_factory=list)  # root drive first, then insertion order
    network_interfaces: list[Any] = field(default_factory=list)
    vsock: Any = None
    entropy: Any = None
    balloon: Any = None
    mmds_config: Any = None
    mmds_data: Any = None  # None until PUT /mmds or /mmds/config creates the data store
    pmem: list[Any] = field(default_factory=list)
    memory_hotplug: Any = None
    serial: Any = None
    logger: Any = None
    metrics: Any = None
    boot_specific_configured: bool = False
    # petard's extension: plugin devices (PluginDeviceConfig) in the order they were added.
    plugin_devices: list[Any] = field(default_factory=list)

    def snapshot(self) -> "VmResources":
        """A copy that readers can use while the owner keeps mutating this one."""
        clone = dataclasses.replace(self)
        for name in ("drives", "network_interfaces", "pmem", "plugin_devices"):
            setattr(clone, name, list(getattr(self, name)))
        clone.machine = copy.copy(self.machine)
        return clone

    # --- machine and boot ------------------------------------------------------------------

    def update_machine(self, update: Any) -> None:
        updated = self.machine.updated(update)
        if self.balloon is not None and updated.mem_size_mib < self.balloon.amount_mib:
            raise faults.VmmActionError(faults.INCOMPATIBLE_BALLOON_SIZE)
        self.machine = updated
        self.boot_specific_configured = True

    def set_boot_source(self, boot_source: Any) -> None:
        error = check_readable(boot_source.kernel_image_path)
        if error:
            raise faults.VmmActionError(faults.kernel_file_error(error))
        if boot_source.initrd_path is not None:
            error = check_readable(boot_source.initrd_path)
            if error:
                raise faults.VmmActionError(faults.initrd_file_error(error))
        try:
            boot_cmdline(boot_source.boot_args)
        except KernelCmdlineError as error:
            raise faults.VmmActionError(faults.kernel_cmdline_error(str(error))) from None
        self.boot_source = boot_source
        self.boot_specific_configured = True

    # --- devices ---------------------------------------------------------------------------

    def set_drive(self, drive: Any) -> None:
        position = next((i for i, d in enumerate(self.drives) if d.drive_id == drive.drive_id), None)
        has_root = bool(self.drives) and self.drives[0].is_root_device
        if drive.is_root_device and any(p.root_device for p in self.pmem):
            raise faults.VmmActionError(faults.BLOCK_ROOT_CONFLICTS_WITH_PMEM)
        if drive.is_root_device and has_root and position != 0:
            raise faults.VmmActionError(faults.ROOT_BLOCK_DEVICE_ALREADY_ADDED)
        if drive.path_on_host is not None:
            error = check_readable(drive.path_on_host)
            if error:
                raise faults.VmmActionError(faults.drive_file_error(error))
        if position is None:
            if drive.is_root_device:
                self.drives.insert(0, drive)
            else:
                self.drives.append(drive)
        else:
            self.drives[position] = drive
            if position != 0 and drive.is_root_device:
                self.drives[0], self.drives[position] = self.drives[position], self.drives[0]
        self.boot_specific_configured = True

    def set_network_interface(self, iface: Any) -> None:
        for other in self.network_interfaces:
            if other.iface_id != iface.iface_id and iface.guest_mac and other.guest_mac == iface.guest_mac:
                raise faults.VmmActionError(faults.mac_in_use(iface.guest_mac))
        _replace_or_append(self.network_interfaces, iface, "iface_id")
        self.boot_specific_configured = True

    def set_pmem(self, pmem: Any) -> None:
        if pmem.root_device and self.drives and self.drives[0].is_root_device:
            raise faults.VmmActionError(faults.PMEM_ROOT_CONFLICTS_WITH_BLOCK)
        if pmem.root_device and any(p.root_device and p.id != pmem.id for p in self.pmem):
            raise faults.VmmActionError(faults.ROOT_PMEM_ALREADY_EXISTS)
        error = check_readable(pmem.path_on_host)
        if error:
            raise faults.VmmActionError(faults.pmem_file_error(error))
        _replace_or_append(self.pmem, pmem, "id")
        self.boot_specific_configured = True

    def set_balloon(self, balloon: Any) -> None:
        if balloon.amount_mib > self.machine.mem_size_mib:
            raise faults.VmmActionError(faults.BALLOON_TOO_MANY_PAGES)
        self.balloon = balloon
        self.boot_specific_configured = True

    def set_memory_hotplug(self, config: Any) -> None:
        problem = faults.memory_hotplug_config_error(config.total_size_mib, config.block_size_mib,
                                                     config.slot_size_mib)
        if problem:
            raise faults.VmmActionError(problem)
        self.memory_hotplug = config
        self.boot_specific_configured = True

    def set_mmds_config(self, config: Any) -> None:
        if not config.network_interfaces:
            raise faults.VmmActionError(faults.MMDS_EMPTY_IFACE_LIST)
        known = {iface.iface_id for iface in self.network_interfaces}
        if any(iface_id not in known for iface_id in config.network_interfaces):
            raise faults.VmmActionError(faults.MMDS_INVALID_IFACE)
        if config.ipv4_address is not None and not config.ipv4_address.startswith("169.254."):
            raise faults.VmmActionError(faults.MMDS_INVALID_IPV4)
        self.mmds_config = config
        self.boot_specific_configured = True

    def set_plugin_device(self, config: Any, plugin_manager: Any) -> None:
        """Add or replace a plugin device (a `PluginDeviceConfig`) after checking it."""
        from petard.core.plugin_devices import check_plugin_device

        check_plugin_device(config, plugin_manager)
        _replace_or_append(self.plugin_devices, config, "device_id")
        self.boot_specific_configured = True

    def unsupported_devices(self) -> list[str]:
        """Configured devices that petard cannot build yet, named as the API names them."""
        names = []
        checks = [
            ("drives", any(drive.path_on_host is None for drive in self.drives)),  # vhost-user
            ("network-interfaces", bool(self.network_interfaces)),
            ("vsock", self.vsock is not None),
            ("mmds-config", self.mmds_config is not None),
            ("pmem", bool(self.pmem)),
            ("memory-hotplug", self.memory_hotplug is not None),
            ("cpu-config", self.cpu_config is not None),
        ]
        for name, present in checks:
            if present:
                names.append(name)
        return names


def _replace_or_append(items: list[Any], item: Any, key: str) -> None:
    for index, existing in enumerate(items):
        if getattr(existing, key) == getattr(item, key):
            items[index] = item
            return
    items.append(item)
