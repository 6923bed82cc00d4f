"""The in-kernel interrupt controller: create a vGICv3 (or v2), place it, initialise it.

The kernel's order: KVM_CREATE_DEVICE and the GRP_ADDR/GRP_NR_IRQS attributes before the
vCPUs run; GRP_CTRL/CTRL_INIT once every vCPU exists and has been initialised. A host
whose GIC has no v2 compatibility (a GICv3 without GICV) answers ENODEV for a vGICv2, a
GICv2 host answers ENODEV for a vGICv3: `probe_gic_version` asks with the TEST flag,
`create_vgic` tries the wanted version and, when allowed, falls back to the other one.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from petard.core.backend import BackendUnavailableError, GicDescription, GicVersion

from . import kvm_abi as abi
from .ioctls import KvmDeviceFd, KvmVmFd

DEVICE_TYPES = {GicVersion.V3: abi.KVM_DEV_TYPE_ARM_VGIC_V3, GicVersion.V2: abi.KVM_DEV_TYPE_ARM_VGIC_V2}


class VgicUnavailableError(BackendUnavailableError):
    """The host's KVM offers none of the interrupt controllers asked for."""


def other_version(version: GicVersion) -> GicVersion:
    return GicVersion.V2 if version == GicVersion.V3 else GicVersion.V3


def probe_gic_version(vm: KvmVmFd, preferred: GicVersion = GicVersion.V3) -> GicVersion:
    """The vGIC version this host supports, `preferred` first (KVM_CREATE_DEVICE_TEST)."""
    for version in (preferred, other_version(preferred)):
        try:
            vm.create_device(DEVICE_TYPES[version], test=True)
        except OSError as error:
            if error.errno != errno.ENODEV:
                raise
            continue
        return version
    raise VgicUnavailableError("the host's KVM offers neither a vGICv3 nor a vGICv2 (ENODEV)")


@dataclass
class Vgic:
    """A created, placed (not yet initialised) in-kernel vGIC."""

    device: KvmDeviceFd
    version: GicVersion

    def initialise(self) -> None:
        """CTRL_INIT: call once all vCPUs have been created and initialised."""
        self.device.set_attr(abi.KVM_DEV_ARM_VGIC_GRP_CTRL, abi.KVM_DEV_ARM_VGIC_CTRL_INIT)

    def close(self) -> None:
        self.device.close()


def _create(vm: KvmVmFd, version: GicVersion) -> KvmDeviceFd:
    return vm.create_device(DEVICE_TYPES[version])


def create_vgic(vm: KvmVmFd, description: GicDescription, fallback: GicDescription | None = None) -> Vgic:
    """Create the vGIC `description` asks for; on ENODEV create `fallback` instead (if given).

    Sets the frame addresses and the number of interrupts; `Vgic.initialise()` remains.
    """
    try:
        device = _create(vm, description.version)
    except OSError as error:
        if error.errno != errno.ENODEV or fallback is None:
            if error.errno == errno.ENODEV:
                raise VgicUnavailableError(
                    f"the host's KVM has no vGICv{int(description.version)} (ENODEV)") from None
            raise
        description = fallback
        device = _create(vm, description.version)
    try:
        place_vgic(device, description)
    except Exception:
        device.close()
        raise
    return Vgic(device, description.version)


def place_vgic(device: KvmDeviceFd, description: GicDescription) -> None:
    group = abi.KVM_DEV_ARM_VGIC_GRP_ADDR
    if description.version == GicVersion.V3:
        device.set_attr(group, abi.KVM_VGIC_V3_ADDR_TYPE_DIST, description.distributor_base)
        device.set_attr(group, abi.KVM_VGIC_V3_ADDR_TYPE_REDIST, description.redistributor_base)
    else:
        device.set_attr(group, abi.KVM_VGIC_V2_ADDR_TYPE_DIST, description.distributor_base)
        device.set_attr(group, abi.KVM_VGIC_V2_ADDR_TYPE_CPU, description.cpu_interface_base)
    device.set_attr(abi.KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, description.irq_count)
