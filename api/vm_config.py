"""JSON bodies of the GET endpoints, in upstream's exact shape (every optional field as null).

``GET /vm/config`` is upstream's ``VmmConfig`` serialized from the resources: kebab-case
top-level keys, ``null`` for absent objects, ``[]`` for absent lists, and the values the
devices were built with (e.g. ``io_engine: "Sync"`` when the request left it out).
"""

from __future__ import annotations

from typing import Any

from petard.core.controller import InstanceInfo
from petard.core.resources import MachineSettings, VmResources

DEFAULT_MMDS_IPV4 = "169.254.169.254"


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")


def instance_info(info: InstanceInfo) -> dict[str, str]:
    return {"id": info.id, "state": info.state, "vmm_version": info.vmm_version, "app_name": info.app_name}


def machine_config(machine: MachineSettings) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vcpu_count": machine.vcpu_count,
        "mem_size_mib": machine.mem_size_mib,
        "smt": machine.smt,
        "track_dirty_pages": machine.track_dirty_pages,
        "huge_pages": machine.huge_pages,
    }
    if machine.cpu_template is not None:  # upstream skips the key when there is no template
        body["cpu_template"] = machine.cpu_template
    return body


def _drive(drive: Any) -> dict[str, Any]:
    body = _dump(drive)
    body["is_read_only"] = bool(drive.is_read_only)
    body["io_engine"] = body["io_engine"] or "Sync"
    return body


def _vsock(vsock: Any) -> dict[str, Any] | None:
    return None if vsock is None else {"guest_cid": vsock.guest_cid, "uds_path": vsock.uds_path}


def _mmds_config(config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    body = _dump(config)
    body["ipv4_address"] = body["ipv4_address"] or DEFAULT_MMDS_IPV4
    return body


def _boot_source(boot_source: Any) -> dict[str, Any]:
    if boot_source is None:
        return {"kernel_image_path": "", "initrd_path": None, "boot_args": None}
    return _dump(boot_source)


def full_vm_config(resources: VmResources) -> dict[str, Any]:
    return {
        "balloon": _dump(resources.balloon),
        "drives": [_drive(drive) for drive in resources.drives],
        "boot-source": _boot_source(resources.boot_source),
        "cpu-config": None,
        "logger": None,
        "machine-config": machine_config(resources.machine),
        "metrics": None,
        "mmds-config": _mmds_config(resources.mmds_config),
        "network-interfaces": [_dump(iface) for iface in resources.network_interfaces],
        "vsock": _vsock(resources.vsock),
        "entropy": _dump(resources.entropy),
        "pmem": [_dump(pmem) for pmem in resources.pmem],
        "memory-hotplug": _dump(resources.memory_hotplug),
    }
