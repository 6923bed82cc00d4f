"""The vCPU backend interface: what the machine builder hands a backend, and what it gets back.

A backend (Unicorn emulation, KVM) turns a `MachineDescription` (guest memory, the MMIO bus,
vCPU count, interrupt-controller kind and addresses, boot registers) into a `Vm`. `Vm.run()`
blocks the calling thread until the guest powers off, resets, fails or `stop()` is called,
and returns a `VmExit`. `pause()`/`resume()`/`stop()` may be called from any other thread.

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
    from .irq import InterruptSink
    from .memory import GuestMemory
    from .mmio import MmioBus


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
    # Where the kernel image was loaded (base, size): lets an emulating backend find spin-wait
    # instructions in it (see backends/unicorn/smp.py). None when not known.
    kernel_region: tuple[int, int] | None = None


class Vm(abc.ABC):
    """A created virtual machine. `run()` blocks; the other methods are thread-safe."""

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
    def vcpu_registers(self, index: int) -> dict[str, int]:
        """General-purpose registers, SP, PC and PSTATE of a vCPU (only while paused or exited)."""

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
    "unicorn": "petard.backends.unicorn",
    "kvm": "petard.backends.kvm",
}


class UnknownBackendError(ValueError):
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
