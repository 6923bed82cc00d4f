"""The vCPU backend interface: what the machine builder hands a backend, and what it gets back.

A backend (Unicorn emulation, KVM) turns a `MachineDescription` (guest memory, the MMIO bus,
vCPU count, interrupt-controller kind and addresses, boot registers) into a `Vm`. `Vm.run()`
blocks the calling thread until the guest powers off, resets, fails or `stop()` is called,
and returns a `VmExit`. `pause()`/`resume()`/`stop()` may be called from any other thread.
While paused, `save_state()` gives the vCPUs' and the interrupt controller's state in
backend-neutral terms (`core/vcpu_state.py`, `core/gic_state.py`); `restore_state()` loads
such a state into a new `Vm` before it runs, whichever backend took it.

The backend calls *into* core: guest MMIO goes to `MmioBus`, devices raise interrupts through
their `IrqLine`s, which the machine builder connects to `Vm.interrupt_sink`. Core never
imports a backend module; `get_backend(name)` imports it by name on demand.
"""

from __future__ import annotations

import abc
import enum
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for type names; core.memory/mmio/irq belong to the devices layer
    from .gic_state import GicState
    from .irq import InterruptSink
    from .memory import GuestMemory
    from .mmio import MmioBus
    from .vcpu_state import VcpuState


# --- errors: one hierarchy for every backend ---------------------------------------------


class BackendError(RuntimeError):
    """A backend could not do what was asked; the message says why, in words a user can act on."""


class BackendUnavailableError(BackendError):
    """This host cannot run the backend at all (no usable /dev/kvm, a failed self-test)."""


class BackendSetupError(BackendError):
    """Creating a VM failed at a named step (the message says which one and why)."""


class PauseTimeoutError(BackendError, TimeoutError):
    """The guest reached no point where it could be paused in time; it runs on unchanged."""


PAUSE_TIMEOUT_S = 10.0


class ExitReason(enum.Enum):
    POWER_OFF = "power-off"         # guest PSCI SYSTEM_OFF
    RESET = "reset"                 # guest PSCI SYSTEM_RESET
    FATAL_ERROR = "fatal-error"     # the guest or the emulator failed; see VmExit.message
    STOPPED = "stopped"             # the VMM called Vm.stop()


@dataclass(frozen=True)
class VmExit:
    reason: ExitReason
    message: str = ""
    vcpu_index: int | None = None
    registers: dict[str, int] = field(default_factory=dict)
    disassembly: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A human-readable report (message, registers, faulting code) for logs."""
        lines = [f"{self.reason.value}: {self.message}" if self.message else self.reason.value]
        if self.vcpu_index is not None:
            lines.append(f"vcpu {self.vcpu_index}")
        names = list(self.registers)
        for start in range(0, len(names), 4):
            lines.append("  ".join(f"{name:>6}={self.registers[name]:#018x}"
                                   for name in names[start:start + 4]))
        lines.extend(self.disassembly)
        return "\n".join(lines)


class GicVersion(enum.IntEnum):
    V2 = 2
    V3 = 3


@dataclass(frozen=True)
class GicDescription:
    """Where the interrupt controller lives. For v2 `cpu_interface_*` is set, for v3 the
    redistributor range (one frame per vCPU, vCPU 0 lowest)."""
    version: GicVersion
    distributor_base: int
    distributor_size: int
    redistributor_base: int = 0
    redistributor_size: int = 0
    cpu_interface_base: int = 0
    cpu_interface_size: int = 0
    irq_count: int = 128            # INTIDs 0..irq_count-1 (SGIs, PPIs, SPIs)


@dataclass(frozen=True)
class BootRegisters:
    """Register state of the boot vCPU (the others start powered off, woken by PSCI CPU_ON)."""
    pc: int
    x0: int                         # the FDT address (arm64 boot protocol)
    pstate: int


class DeviceEventSource(Protocol):
    """Time-driven device work the vCPU loop must run (e.g. the devices' virtual clock)."""

    def next_deadline(self) -> float | None:
        """Monotonic time (seconds) of the next due callback, or None."""

    def run_due(self) -> None:
        """Run every callback whose time has come."""

    def set_wakeup(self, wakeup) -> None:
        """Install what to call (from any thread) when new work is posted: the backend
        passes a function that cuts its idle wait short."""


@dataclass
class MachineDescription:
    memory: GuestMemory
    mmio_bus: MmioBus
    vcpu_count: int
    vcpu_mpidrs: list[int]
    gic: GicDescription
    boot: BootRegisters
    device_events: DeviceEventSource | None = None
    # Where the kernel image was loaded (base, size), for a backend that looks into the
    # kernel's code (an emulator patching its spin-wait hints). None when not known.
    kernel_region: tuple[int, int] | None = None


@dataclass
class MachineState:
    """What a backend saves of a paused machine, in backend-neutral terms: every vCPU and the
    interrupt controller (guest memory and the devices are saved apart from it)."""

    vcpus: list[VcpuState]
    gic: GicState


def state_mismatch(state: MachineState, machine: MachineDescription) -> str | None:
    """Why `state` cannot be loaded into a VM of `machine`, or None if it fits."""
    if len(state.vcpus) != machine.vcpu_count:
        return f"{len(state.vcpus)} vCPUs were saved, the machine has {machine.vcpu_count}"
    for index, (vcpu, mpidr) in enumerate(zip(state.vcpus, machine.vcpu_mpidrs)):
        if vcpu.mpidr != mpidr:
            return f"vCPU {index} was saved with MPIDR {vcpu.mpidr:#x}, the machine gives it {mpidr:#x}"
    gic, wanted = state.gic, machine.gic
    if (gic.version, gic.irq_count, len(gic.cpus)) != (int(wanted.version), wanted.irq_count, machine.vcpu_count):
        return (f"a GICv{gic.version} with {gic.irq_count} interrupts and {len(gic.cpus)} CPU interfaces "
                f"was saved, the machine has a GICv{int(wanted.version)} with {wanted.irq_count} and "
                f"{machine.vcpu_count}")
    return None


class Vm(abc.ABC):
    """A created virtual machine. `run()` blocks; the other methods are thread-safe."""

    # The name of the thread that calls `run()` (log lines show it): upstream names a vCPU's
    # thread "fc_vcpu N". An emulating backend runs every vCPU on that one thread; a backend
    # that gives each vCPU a thread of its own names the waiting one otherwise.
    run_thread_name = "fc_vcpu 0"

    @property
    @abc.abstractmethod
    def interrupt_sink(self) -> InterruptSink:
        """Where devices' IRQ lines are connected (INTIDs, level-triggered semantics)."""

    @abc.abstractmethod
    def run(self) -> VmExit:
        """Run the guest until it powers off, resets, fails or is stopped."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Stop executing guest instructions at the next safe point; returns once paused."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Continue a paused guest exactly where it stopped."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Make `run()` return `ExitReason.STOPPED` (works while paused too)."""

    @property
    @abc.abstractmethod
    def paused(self) -> bool:
        ...

    @abc.abstractmethod
    def vcpu_state(self, index: int) -> VcpuState:
        """A vCPU's whole state (only while paused, before the first run, or after the exit)."""

    def vcpu_registers(self, index: int) -> dict[str, int]:
        """x0..x30, sp_el0, sp_el1, pc and pstate of a vCPU, by name (as `vcpu_state`)."""
        return self.vcpu_state(index).general_registers()

    @abc.abstractmethod
    def save_state(self) -> MachineState:
        """Every vCPU's and the interrupt controller's state (while paused, or before the
        first run)."""

    @abc.abstractmethod
    def restore_state(self, state: MachineState) -> None:
        """Load a saved state into this VM before its first run (instead of the boot
        registers): `run()` then continues the guest where the state was taken. The machine
        must match (vCPU count and MPIDRs, GIC version and size); a mismatch raises
        BackendError and changes nothing."""

    def close(self) -> None:
        """Release backend resources (engines, file descriptors)."""


class Backend(abc.ABC):
    name: str

    def gic_version(self, requested: int | None) -> GicVersion:
        """The interrupt controller machines on this backend get: `requested`, or the
        backend's choice for None (the KVM backend probes the host: v3, else v2)."""
        return GicVersion(requested) if requested is not None else GicVersion.V3

    @abc.abstractmethod
    def create_vm(self, machine: MachineDescription) -> Vm:
        ...


# Backend name -> module that defines `BACKEND_CLASS`.
BACKEND_MODULES = {
    "kvm": "petard.backends.kvm",
    "unicorn": "petard.backends.unicorn",
}
BACKEND_NAMES = tuple(BACKEND_MODULES)
# KVM is the production path, and what a Firecracker user gets when naming no backend.
DEFAULT_BACKEND = "kvm"
# The backend that runs on any host: what tests and tools that must work everywhere pick.
EMULATION_BACKEND = "unicorn"


class UnknownBackendError(BackendError, ValueError):
    pass


def get_backend(name: str) -> Backend:
    """Instantiate the backend called `name` (imports its package only now)."""
    try:
        module_name = BACKEND_MODULES[name]
    except KeyError:
        raise UnknownBackendError(
            f"unknown backend {name!r}; known: {', '.join(sorted(BACKEND_MODULES))}") from None
    module = importlib.import_module(module_name)
    backend_class = getattr(module, "BACKEND_CLASS", None)
    if backend_class is None:
        raise UnknownBackendError(f"backend {name!r} ({module_name}) is not available yet")
    return backend_class()
