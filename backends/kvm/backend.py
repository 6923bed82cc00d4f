"""`KvmBackend`: the `Backend` that runs aarch64 guests on the host's /dev/kvm.

Creating the backend checks the host (aarch64, /dev/kvm present and accessible, KVM API
12 with the capabilities petard needs) and raises `KvmUnavailableError` with a sentence a
user can act on otherwise; the API turns that into a fault, never a traceback.
"""

from __future__ import annotations

from petard.core.backend import Backend, GicVersion, MachineDescription

from . import kvm_abi as abi
from .host import KVM_DEVICE, KvmUnavailableError, check_host
from .ioctls import KvmSystem
from .vgic import VgicUnavailableError, probe_gic_version
from .vm import KvmVm

REQUIRED_CAPABILITIES = {
    abi.KVM_CAP_USER_MEMORY: "KVM_CAP_USER_MEMORY",
    abi.KVM_CAP_ONE_REG: "KVM_CAP_ONE_REG",
    abi.KVM_CAP_DEVICE_CTRL: "KVM_CAP_DEVICE_CTRL",
    abi.KVM_CAP_ARM_PSCI_0_2: "KVM_CAP_ARM_PSCI_0_2",
    abi.KVM_CAP_IMMEDIATE_EXIT: "KVM_CAP_IMMEDIATE_EXIT",
}
HINT = "Run petard with --backend unicorn to emulate the vCPUs instead."


def open_kvm(device: str = KVM_DEVICE) -> KvmSystem:
    """/dev/kvm, checked: right architecture, API version, capabilities."""
    check_host(device)
    try:
        system = KvmSystem(device)
    except OSError as error:
        raise KvmUnavailableError(f"KVM is not available: cannot open {device}: {error.strerror}. {HINT}") from None
    try:
        version = system.api_version()
        if version != abi.KVM_API_VERSION:
            raise KvmUnavailableError(
                f"KVM API version {version} on {device}; petard needs {abi.KVM_API_VERSION}. {HINT}")
        missing = [name for cap, name in REQUIRED_CAPABILITIES.items() if system.check_extension(cap) <= 0]
        if missing:
            raise KvmUnavailableError(f"this host's KVM lacks {', '.join(missing)}. {HINT}")
    except BaseException:
        system.close()
        raise
    return system


class KvmBackend(Backend):
    name = "kvm"

    def __init__(self, device: str = KVM_DEVICE) -> None:
        self.device = device
        open_kvm(device).close()

    def gic_version(self, requested: int | None = None) -> GicVersion:
        """The vGIC a machine on this host gets. None: GICv3, or GICv2 when the host's KVM
        answers ENODEV for v3 (a GICv2 host), as Firecracker does. An explicit request the
        host cannot honour is a clear error."""
        preferred = GicVersion(requested) if requested is not None else GicVersion.V3
        system = open_kvm(self.device)
        try:
            vm = system.create_vm()
            try:
                available = probe_gic_version(vm, preferred)
            except VgicUnavailableError as error:
                raise KvmUnavailableError(f"{error}. {HINT}") from None
            finally:
                vm.close()
        finally:
            system.close()
        if requested is not None and available != preferred:
            raise KvmUnavailableError(
                f"this host's KVM has no vGICv{int(preferred)} (ENODEV); it offers GICv{int(available)}: "
                f"start petard with --gic-version {int(available)} or without --gic-version")
        return available

    def create_vm(self, machine: MachineDescription) -> KvmVm:
        system = open_kvm(self.device)
        try:
            return KvmVm(machine, system)
        except VgicUnavailableError as error:
            other = 2 if machine.gic.version == GicVersion.V3 else 3
            raise KvmUnavailableError(
                f"{error}: this host's interrupt controller needs a GICv{other} guest "
                f"(start petard with --gic-version {other})") from None
