"""The Unicorn VM: all vCPUs on one engine (engine.py), run round-robin in ONE host thread.

One host thread because Unicorn's exclusives are not atomic across threads and a running
engine cannot be stopped safely from outside (see docs/unicorn-smp.md): each vCPU runs one
slice in turn with its state loaded into the shared engine; with more than one vCPU, smp.py
adds spin-wait yielding.
Scheduling: round-robin over the vCPUs that can run (powered on, not waiting in WFI, or
waiting with an interrupt signalled); a vCPU an interrupt is signalled to while another runs
cuts that one's slice short and goes next; a slice also ends by the next timer deadline of
any other vCPU. Halted and powered-off vCPUs cost nothing but a check between slices.
The loop also runs the devices' due clock callbacks, sleeps while every vCPU waits in WFI
(until the next timer deadline, device event or wake-up), and honours pause/resume/stop
requests from other threads at slice boundaries only, so a paused guest (all its vCPUs)
continues exactly.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import Counter

from petard.core.backend import (
    ExitReason, GicVersion, MachineDescription, Vm, VmExit)

from .engine import SharedEngine
from .gic_common import EmulatedGic
from .gicv2 import GicV2
from .gicv3 import GicV3
from .guest_va import InstructionReader
from .psci import PsciFirmware
from .smp import SmpSupport
from .syndrome import ExceptionDetailsReader
from .vcpu import PowerState, UnicornVcpu, msr_classes

DEFAULT_SLICE_NS = 4_000_000        # how long a vCPU runs before the next safe stop
MAX_IDLE_SLEEP_S = 1.0              # idle sleeps are re-evaluated at least this often


class PauseTimeoutError(TimeoutError):
    pass


# VMs whose loop is running: stopped at interpreter exit, because tearing Unicorn down under
# a thread that is still inside emu_start crashes the process ("corrupted double-linked list").
_running_vms: "weakref.WeakSet[UnicornVm]" = weakref.WeakSet()
EXIT_STOP_TIMEOUT_S = 2.0


@atexit.register
def _stop_running_vms() -> None:
    for vm in list(_running_vms):
        vm.stop()
        vm.finished.wait(EXIT_STOP_TIMEOUT_S)


class UnicornVm(Vm):
    def __init__(self, machine: MachineDescription, exception_details: ExceptionDetailsReader,
                 slice_ns: int = DEFAULT_SLICE_NS):
        self.machine = machine
        self.memory = machine.memory
        self.mmio_bus = machine.mmio_bus
        self.exception_details = exception_details
        self.slice_ns = slice_ns
        self.gic = self._create_gic(machine)
        self.gic.state.on_change = self._on_interrupt_change
        self.instructions = InstructionReader(self.memory.read_u64, self.memory.read_u32)
        self.psci = PsciFirmware(self)
        self.engine = SharedEngine(self, msr_classes())
        self.vcpus = [UnicornVcpu(self, index, mpidr)
                      for index, mpidr in enumerate(machine.vcpu_mpidrs)]
        self.smp = SmpSupport(self) if machine.vcpu_count > 1 else None
        boot = machine.boot
        self.vcpus[0].power_on(boot.pc, boot.x0, boot.pstate)
        self._wake_event = threading.Event()
        self._pause_requested = False
        self._paused = threading.Event()
        self._resume = threading.Event()
        self._stop_requested = False
        self._running = False
        self._cursor = 0                        # round-robin position
        self._current: UnicornVcpu | None = None   # the vCPU inside run_slice, if any
        self.finished = threading.Event()
        self.idle_seconds = 0.0
        self.exit: VmExit | None = None
        if machine.device_events is not None:
            machine.device_events.set_wakeup(self.wake)

    @staticmethod
    def _create_gic(machine: MachineDescription) -> EmulatedGic:
        if machine.gic.version == GicVersion.V3:
            return GicV3(machine.gic, machine.vcpu_mpidrs)
        return GicV2(machine.gic, machine.vcpu_count)

    # --- Vm interface ------------------------------------------------------------------

    @property
    def interrupt_sink(self) -> EmulatedGic:
        return self.gic

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def wake(self) -> None:
        """Cut an idle sleep short (any thread)."""
        self._wake_event.set()

    def pause(self, timeout: float | None = 10.0) -> None:
        """Returns once the vCPU loop is parked at a slice boundary (or the VM is not running:
        then `run()` parks before the first instruction). Raises PauseTimeoutError if the
        guest reaches no safe stop point in `timeout` seconds (a kernel loop without any)."""
        self._resume.clear()
        self._pause_requested = True
        if not self._running:
            self._paused.set()
            return
        for vcpu in self.vcpus:
            vcpu.request_stop()
        self.wake()
        if not self._paused.wait(timeout):
            raise PauseTimeoutError("the guest did not reach a safe stop point in time")

    def resume(self) -> None:
        self._pause_requested = False
        self._resume.set()

    def stop(self) -> None:
        self._stop_requested = True
        for vcpu in self.vcpus:
            vcpu.request_stop()
        self._resume.set()
        self.wake()

    def vcpu_registers(self, index: int) -> dict[str, int]:
        return self.vcpus[index].registers()

    def stats(self) -> Counter:
        """Callback and event counts summed over the vCPUs, plus GIC accesses."""
        total: Counter[str] = Counter()
        for vcpu in self.vcpus:
            total.update(vcpu.stats)
        total.update({f"{hook}-answered-natively": count
                      for hook, count in self.engine.gate.answered().items()})
        total["vcpu-switches"] = self.engine.switches
        total["gic-mmio"] = self.gic.access_count
        total["gic-sysreg"] = getattr(self.gic, "sysreg_access_count", 0)
        total["timer-writes"] = sum(vcpu.timer.write_count for vcpu in self.vcpus)
        total["psci-calls"] = len(self.psci.calls)
        if self.smp is not None:
            total["spin-sites-patched"] = self.smp.spin_site_count
        return total

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> VmExit:
        self._running = True
        self.finished.clear()
        _running_vms.add(self)
        try:
            return self._loop()
        finally:
            _running_vms.discard(self)
            self._running = False
            self._paused.clear()
            self.finished.set()

    def _loop(self) -> VmExit:
        events = self.machine.device_events
        while True:
            if self._stop_requested:
                return self._finish(self.exit or VmExit(ExitReason.STOPPED, "stopped by the VMM"))
            if self._pause_requested:
                self._park()
                continue
            if events is not None:
                deadline = events.next_deadline()
                if deadline is not None and deadline <= time.monotonic():
                    events.run_due()
            vcpu = self._next_vcpu()
            if vcpu is None:
                if not (self._stop_requested or self._pause_requested):
                    self._idle()
                continue
            self._current = vcpu
            vcpu.run_slice(self.slice_ns, self._other_timer_deadline(vcpu))
            self._current = None
            if vcpu.exit is not None:
                return self._finish(vcpu.exit)

    def _next_vcpu(self) -> UnicornVcpu | None:
        """Round-robin over the runnable vCPUs, except that one an interrupt was signalled to
        while another ran goes first (it got that one's slice cut short)."""
        count = len(self.vcpus)
        runnable = []
        for step in range(count):
            vcpu = self.vcpus[(self._cursor + step) % count]
            if vcpu.power is PowerState.OFF:
                continue
            if vcpu.halted and not vcpu.wake_if_interrupted():
                continue
            if vcpu.kicked:
                runnable = [vcpu]
                break
            runnable.append(vcpu)
        if not runnable:
            return None
        chosen = runnable[0]
        chosen.kicked = False
        self._cursor = (chosen.index + 1) % count
        return chosen

    def _other_timer_deadline(self, running: UnicornVcpu) -> int | None:
        """When the next timer of another powered-on vCPU fires (monotonic ns): the running
        vCPU's slice must end by then so that interrupt is not a whole slice late."""
        deadline = None
        for vcpu in self.vcpus:
            if vcpu is not running and vcpu.power is PowerState.ON:
                at = vcpu.timer.next_deadline_ns()
                if at is not None and (deadline is None or at < deadline):
                    deadline = at
        return deadline

    def _finish(self, vm_exit: VmExit) -> VmExit:
        self.exit = vm_exit
        return vm_exit

    def _park(self) -> None:
        self._paused.set()
        self._resume.wait()
        self._paused.clear()

    def _idle(self) -> None:
        """Every vCPU is off or in WFI: sleep until something can wake one."""
        self._wake_event.clear()
        if any(vcpu.power is PowerState.ON_PENDING for vcpu in self.vcpus):
            return
        if not any(vcpu.power is PowerState.ON for vcpu in self.vcpus):
            self.exit = VmExit(ExitReason.FATAL_ERROR, "every vCPU is powered off (PSCI CPU_OFF)")
            self._stop_requested = True
            return
        deadlines = [deadline / 1e9 for vcpu in self.vcpus
                     if vcpu.power is PowerState.ON
                     and (deadline := vcpu.timer.next_deadline_ns()) is not None]
        events = self.machine.device_events
        if events is not None and (event_deadline := events.next_deadline()) is not None:
            deadlines.append(event_deadline)
        now = time.monotonic()
        timeout = min([MAX_IDLE_SLEEP_S] + [max(0.0, d - now) for d in deadlines])
        if any(vcpu.halted and self.gic.irq_signalled(vcpu.index) for vcpu in self.vcpus):
            return
        started = time.monotonic()
        self._wake_event.wait(timeout)
        self.idle_seconds += time.monotonic() - started

    def _on_interrupt_change(self, cpus) -> None:
        """The GIC may now signal an IRQ to `cpus`: get them to a stop point soon and, if one
        of them is not the vCPU running now, end the running one's slice at its next safe
        point so the scheduler turns to it (any thread)."""
        woke = False
        current = self._current
        for index in cpus:
            vcpu = self.vcpus[index]
            if self.gic.irq_signalled(index):
                vcpu.irq_wanted = True
                vcpu.request_stop()
                if current is not None and vcpu is not current:
                    vcpu.kicked = True
                    current.request_stop()
                woke = True
        if woke:
            self.wake()

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.uc = None
        self.engine.close()
