"""The KVM VM: guest RAM in a memory slot, an in-kernel vGIC, one host thread per vCPU.

Threads while `run()` blocks its caller:

* ``fc_vcpu N`` (one per vCPU) loops on KVM_RUN. MMIO exits go to the `MmioBus`;
  `KVM_EXIT_SYSTEM_EVENT` (PSCI SYSTEM_OFF/RESET, handled in-kernel up to there) ends the VM
  as Firecracker does; anything unexpected ends it with a fatal report and registers.
* ``fc_vcpu clock`` drives the devices' virtual clock (`run_due()` at each deadline, woken
  early by `set_wakeup`).

Device code is single-threaded by design, so every bus access and every `run_due()` runs
under ONE lock (`bus_lock`). Interrupts from devices become KVM_IRQ_LINE on the VM fd.

Pause/stop/exit state lives in one `RunControl` (control.py) that the VM and its threads
share; the threads never call into the VM. To pause or stop, the control asks for it and
kicks every thread: the kick sets `immediate_exit` in each vCPU's `kvm_run` and signals the
thread with a signal that is blocked in userspace but unblocked inside KVM_RUN (through
KVM_SET_SIGNAL_MASK), so KVM_RUN returns EINTR and no Python signal handler is involved.
A pausing vCPU calls KVM_RUN once more with `immediate_exit` set: the kernel then completes
a pending MMIO load into the guest register before returning, so the state seen while
paused (and resumed from) is exact.
"""

from __future__ import annotations

import logging
import threading
import time

from petard.core.arch import sysregs
from petard.core.backend import (PAUSE_TIMEOUT_S, BackendError, BackendSetupError, ExitReason, GicVersion,
                                 MachineDescription, MachineState, Vm, VmExit, state_mismatch)
from petard.core.vcpu_state import VcpuState

from . import kvm_abi as abi
from .control import RunControl
from .ioctls import KvmSystem, KvmVmFd
from .vcpu import KvmVcpu
from .vcpu_state import read_vcpu_state, write_vcpu_state
from .vgic import Vgic, create_vgic
from .vgic_state import VgicRegisters

MEMORY_SLOT = 0
CLOCK_THREAD_NAME = "fc_vcpu clock"
MAX_CLOCK_SLEEP_S = 1.0


class KvmInterruptSink:
    """`InterruptSink` for devices: INTID level → KVM_IRQ_LINE (SPIs)."""

    def __init__(self, vm_fd: KvmVmFd):
        self._vm_fd = vm_fd

    def set_irq_level(self, intid: int, level: bool) -> None:
        self._vm_fd.irq_line(abi.spi_irq_line(intid), level)


class KvmVm(Vm):
    """A VM on /dev/kvm. Created fully (memory, vGIC, vCPUs, boot registers) by __init__."""

    run_thread_name = "fc_vcpu main"     # only waits: the vCPUs have threads of their own

    def __init__(self, machine: MachineDescription, system: KvmSystem):
        self.machine = machine
        self.mmio_bus = machine.mmio_bus
        self.bus_lock = threading.Lock()
        self.system = system
        self.vm_fd: KvmVmFd | None = None
        self.vgic: Vgic | None = None
        self.vcpus: list[KvmVcpu] = []
        self.control = RunControl(self._kick_all)
        self._clock_wake = threading.Event()
        self._clock_thread: threading.Thread | None = None
        self._started = False
        try:
            self._create(machine)
        except BaseException:
            self.close()
            raise

    # --- creation, in the order the kernel requires ------------------------------------

    def _create(self, machine: MachineDescription) -> None:
        memory = machine.memory
        step = "KVM_CREATE_VM"
        try:
            self.vm_fd = vm_fd = self.system.create_vm()
            step = f"KVM_SET_USER_MEMORY_REGION ({memory.size >> 20} MiB at {memory.base:#x})"
            vm_fd.set_user_memory_region(MEMORY_SLOT, memory.base, memory.size, memory.host_address)
            step = f"creating the in-kernel vGICv{int(machine.gic.version)}"
            self.vgic = create_vgic(vm_fd, machine.gic)
            step = "KVM_ARM_PREFERRED_TARGET"
            target = vm_fd.preferred_target()
            for index in range(machine.vcpu_count):
                step = f"KVM_CREATE_VCPU {index} (this host's KVM allows " \
                       f"{vm_fd.check_extension(abi.KVM_CAP_MAX_VCPUS)} vCPUs)"
                self.vcpus.append(KvmVcpu(vm_fd.create_vcpu(index), self.control, self.mmio_bus,
                                          self.bus_lock))
            for vcpu in self.vcpus:
                step = f"KVM_ARM_VCPU_INIT of vCPU {vcpu.index}"
                features = 1 << abi.KVM_ARM_VCPU_PSCI_0_2
                if vcpu.index != 0:
                    features |= 1 << abi.KVM_ARM_VCPU_POWER_OFF
                vcpu.fd.init(target, features)
            self._check_mpidrs(machine)
            step = "KVM_DEV_ARM_VGIC_CTRL_INIT"
            self.vgic.initialise()
            step = "setting the boot registers"
            boot = machine.boot
            boot_vcpu = self.vcpus[0].fd
            boot_vcpu.set_one_reg(abi.REG_PC, boot.pc)
            boot_vcpu.set_one_reg(abi.core_register_x(0), boot.x0)
            boot_vcpu.set_one_reg(abi.REG_PSTATE, boot.pstate)
        except OSError as error:
            raise BackendSetupError(f"{step} failed: {error.strerror or error}") from None
        self._interrupt_sink = KvmInterruptSink(vm_fd)

    def _check_mpidrs(self, machine: MachineDescription) -> None:
        """The FDT's cpu nodes were written from `vcpu_mpidrs`; KVM assigns the real MPIDRs."""
        for vcpu, expected in zip(self.vcpus, machine.vcpu_mpidrs):
            affinity = vcpu.fd.get_one_reg(abi.REG_MPIDR_EL1) & sysregs.MPIDR_AFFINITY_MASK
            if affinity != expected:
                raise RuntimeError(f"KVM gave vCPU {vcpu.index} MPIDR affinity {affinity:#x}, "
                                   f"the device tree says {expected:#x}")

    @property
    def gic_version(self) -> GicVersion:
        assert self.vgic is not None
        return self.vgic.version

    # --- Vm interface ---------------------------------------------------------------------

    @property
    def interrupt_sink(self) -> KvmInterruptSink:
        return self._interrupt_sink

    @property
    def paused(self) -> bool:
        return self.control.paused

    def run(self) -> VmExit:
        if self._started:
            raise RuntimeError("a KVM VM runs once")
        self._started = True
        events = self.machine.device_events
        self.control.threads_starting(len(self.vcpus) + (events is not None))
        if events is not None:
            events.set_wakeup(self._clock_wake.set)
            self._clock_thread = threading.Thread(target=self._clock_main, name=CLOCK_THREAD_NAME, daemon=True)
            self._clock_thread.start()
        for vcpu in self.vcpus:
            vcpu.start()
        vm_exit = self.control.wait_exit()
        self._halt_threads()
        return vm_exit

    def pause(self, timeout: float | None = PAUSE_TIMEOUT_S) -> None:
        self.control.pause(timeout)

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.finish(VmExit(ExitReason.STOPPED, "stopped by the VMM"))

    def vcpu_state(self, index: int) -> VcpuState:
        self._check_stopped("read a vCPU's state")
        return read_vcpu_state(self.vcpus[index].fd)

    def save_state(self) -> MachineState:
        self._check_stopped("save the machine's state")
        return MachineState([read_vcpu_state(vcpu.fd) for vcpu in self.vcpus], self._vgic_registers().save())

    def restore_state(self, state: MachineState) -> None:
        if self._started:
            raise BackendError("a state can only be restored into a VM that has not run yet")
        problem = state_mismatch(state, self.machine)
        if problem is not None:
            raise BackendError(f"the saved state does not fit this machine: {problem}")
        try:
            for vcpu, vcpu_state in zip(self.vcpus, state.vcpus):
                write_vcpu_state(vcpu.fd, vcpu_state)
            self._vgic_registers().restore(state.gic)
        except OSError as error:
            raise BackendError(f"KVM refused the saved state: {error.strerror or error}") from None

    def _vgic_registers(self) -> VgicRegisters:
        assert self.vgic is not None
        return VgicRegisters(self.vgic.device, int(self.vgic.version), self.machine.gic.irq_count,
                             self.machine.vcpu_mpidrs)

    def _check_stopped(self, what: str) -> None:
        if self._started and not self.control.exited and not self.control.paused:
            raise BackendError(f"pause the VM to {what}")

    def close(self) -> None:
        if self._started:
            self._halt_threads()
        for vcpu in self.vcpus:
            vcpu.fd.close()
        self.vcpus = []
        if self.vgic is not None:
            self.vgic.close()
            self.vgic = None
        if self.vm_fd is not None:
            self.vm_fd.close()
            self.vm_fd = None
        self.system.close()

    # --- the threads ------------------------------------------------------------------------

    def _kick_all(self) -> None:
        for vcpu in self.vcpus:
            vcpu.kick()
        self._clock_wake.set()

    def _halt_threads(self) -> None:
        self.control.stop_threads()
        threads = [vcpu.thread for vcpu in self.vcpus] + [self._clock_thread]
        for thread in threads:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)

    # --- the device clock ------------------------------------------------------------------

    def _clock_main(self) -> None:
        events = self.machine.device_events
        control = self.control
        wake = self._clock_wake
        vm_exit = None
        try:
            while True:
                wake.clear()
                if control.control_requested:
                    if control.stop_requested:
                        return
                    if control.pause_requested:
                        control.park_until_resumed()
                        continue
                with self.bus_lock:
                    events.run_due()
                deadline = events.next_deadline()
                timeout = MAX_CLOCK_SLEEP_S if deadline is None else deadline - time.monotonic()
                if timeout > 0:
                    wake.wait(min(timeout, MAX_CLOCK_SLEEP_S))
        except Exception as error:
            logging.getLogger(__name__).exception("the device clock thread failed")
            vm_exit = VmExit(ExitReason.FATAL_ERROR, f"device clock failed: {error}")
        finally:
            events.set_wakeup(None)
            control.thread_ended("the device clock", vm_exit)
