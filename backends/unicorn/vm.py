"""The Unicorn VM: all vCPUs on one engine (engine.py), run round-robin in ONE host thread.

One host thread because Unicorn's exclusives are not atomic across threads and a running
engine cannot be stopped safely from outside (see docs/unicorn-smp.md): each vCPU runs one
slice in turn with its state loaded into the shared engine; with more than one vCPU, smp.py
adds spin-wait yielding. The scheduler (scheduler.py) picks the vCPU; the slice ends with a
`VcpuStop` value and `_handle_stop` alone decides what it means for the VM (Firecracker's
`handle_kvm_exit`): a WFI halts the vCPU, CPU_OFF powers it off, SYSTEM_OFF/RESET and fatal
errors end the VM.
The loop also runs the devices' due clock callbacks, sleeps while every vCPU waits in WFI
(until the next timer deadline, device event or wake-up), and honours pause/resume/stop
requests from other threads at slice boundaries only, so a paused guest (all its vCPUs)
continues exactly. While paused (or before the first run) the machine's state can be saved,
and a new VM can be given a saved state before it runs.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import Counter

from petard.core.backend import (PAUSE_TIMEOUT_S, BackendError, ExitReason, GicVersion, MachineDescription,
                                 MachineState, PauseTimeoutError, Vm, VmExit, state_mismatch)
from petard.core.vcpu_state import VcpuState

from .engine import SharedEngine
from .fatal import fatal_exit
from .gic_common import EmulatedGic
from .gicv2 import GicV2
from .gicv3 import GicV3
from .ports import StopReason, VcpuStop
from .psci import PsciFirmware
from .published_code import PublishedCode
from .scheduler import Scheduler
from .smp import SmpSupport
from .syndrome import ExceptionDetailsReader
from .vcpu import UnicornVcpu, msr_classes

DEFAULT_SLICE_NS = 4_000_000        # how long a vCPU runs before the next safe stop
MAX_IDLE_SLEEP_S = 1.0              # idle sleeps are re-evaluated at least this often

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
        self.slice_ns = slice_ns
        self.gic = self._create_gic(machine)
        self.gic.model.on_change = self._on_interrupt_change
        self.vcpus: list[UnicornVcpu] = []
        self.scheduler = Scheduler(self.vcpus, self.gic.irq_signalled)
        self.engine = SharedEngine(machine.memory, machine.mmio_bus, self.gic.mmio_regions(), exception_details,
                                   msr_classes(), lambda page, stats: self.published_code.on_ic_ivau(page, stats))
        self.smp = SmpSupport(machine.memory, machine.kernel_region, self.engine.fetch,
                              self.scheduler.another_can_run) if machine.vcpu_count > 1 else None
        self.published_code = PublishedCode(self.engine.uc, machine.memory, machine.kernel_region,
                                            self.smp.patch_published_page if self.smp is not None else None)
        self.psci = PsciFirmware(self.vcpus, machine.memory.contains)
        self.vcpus.extend(UnicornVcpu(index, mpidr, self.engine, self.gic, self.psci, self.smp)
                          for index, mpidr in enumerate(machine.vcpu_mpidrs))
        boot = machine.boot
        self.vcpus[0].power_on(boot.pc, boot.x0, boot.pstate)
        self._wake_event = threading.Event()
        self._pause_requested = False
        self._paused = threading.Event()
        self._resume = threading.Event()
        self._stop_requested = False
        self._running = False
        self._ran = False
        self.finished = threading.Event()
        self.idle_seconds = 0.0
        self.exit: VmExit | None = None

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

    def pause(self, timeout: float | None = PAUSE_TIMEOUT_S) -> None:
        """Returns once the vCPU loop is parked at a slice boundary (or the VM is not running:
        then `run()` parks before the first instruction). Raises PauseTimeoutError if the
        guest reaches no safe stop point in `timeout` seconds (a kernel loop without any); the
        pause is then withdrawn and the guest runs on as if never asked."""
        self._resume.clear()
        self._pause_requested = True
        if not self._running:
            self._paused.set()
            return
        for vcpu in self.vcpus:
            vcpu.request_stop()
        self.wake()
        if not self._paused.wait(timeout):
            self.resume()
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

    def vcpu_state(self, index: int) -> VcpuState:
        self._check_stopped("read a vCPU's state")
        return self.vcpus[index].save_state()

    def save_state(self) -> MachineState:
        self._check_stopped("save the machine's state")
        return MachineState([vcpu.save_state() for vcpu in self.vcpus], self.gic.save_state())

    def restore_state(self, state: MachineState) -> None:
        if self._ran:
            raise BackendError("a state can only be restored into a VM that has not run yet")
        problem = state_mismatch(state, self.machine)
        if problem is not None:
            raise BackendError(f"the saved state does not fit this machine: {problem}")
        for vcpu, vcpu_state in zip(self.vcpus, state.vcpus):
            vcpu.restore_state(vcpu_state)
        self.gic.restore_state(state.gic)

    def _check_stopped(self, what: str) -> None:
        if self._running and not self.paused:
            raise BackendError(f"pause the VM to {what}")

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
        self._ran = True
        self.finished.clear()
        _running_vms.add(self)
        if self.machine.device_events is not None:
            self.machine.device_events.set_wakeup(self.wake)
        try:
            return self._loop()
        finally:
            _running_vms.discard(self)
            self._running = False
            self._paused.clear()
            self.finished.set()

    def _loop(self) -> VmExit:
        events = self.machine.device_events
        scheduler = self.scheduler
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
            vcpu = scheduler.next_vcpu()
            if vcpu is None:
                if not (self._stop_requested or self._pause_requested):
                    self._idle()
                continue
            scheduler.current = vcpu
            stop = vcpu.run_slice(self.slice_ns, scheduler.other_timer_deadline(vcpu))
            scheduler.current = None
            vm_exit = self._handle_stop(vcpu, stop)
            if vm_exit is not None:
                return self._finish(vm_exit)

    def _handle_stop(self, vcpu: UnicornVcpu, stop: VcpuStop) -> VmExit | None:
        """What a vCPU's stop means: the VM's exit, or None to go on (the vCPU still holds
        the engine, so a fatal report reads its registers)."""
        reason = stop.reason
        if reason is StopReason.WFI:
            vcpu.halt()
        elif reason is StopReason.CPU_OFF:
            vcpu.power_off()
        elif reason is StopReason.SYSTEM_OFF:
            return VmExit(ExitReason.POWER_OFF, "guest requested PSCI SYSTEM_OFF", vcpu.index)
        elif reason is StopReason.SYSTEM_RESET:
            return VmExit(ExitReason.RESET, "guest requested PSCI SYSTEM_RESET", vcpu.index)
        elif reason is StopReason.FATAL:
            return fatal_exit(stop.message, vcpu.index, vcpu.save_state(),
                              lambda va: self.engine.fetch(va, cache=False))
        elif reason is StopReason.UNEXPLAINED:
            vcpu.stats["unexplained-returns"] += 1
        return None

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
        scheduler = self.scheduler
        if scheduler.any_starting():
            return
        if scheduler.all_off():
            self.exit = VmExit(ExitReason.FATAL_ERROR, "every vCPU is powered off (PSCI CPU_OFF)")
            self._stop_requested = True
            return
        deadlines = [deadline / 1e9 for deadline in scheduler.timer_deadlines_ns()]
        events = self.machine.device_events
        if events is not None and (event_deadline := events.next_deadline()) is not None:
            deadlines.append(event_deadline)
        now = time.monotonic()
        timeout = min([MAX_IDLE_SLEEP_S] + [max(0.0, d - now) for d in deadlines])
        if scheduler.any_halted_with_interrupt():
            return
        started = time.monotonic()
        self._wake_event.wait(timeout)
        self.idle_seconds += time.monotonic() - started

    def _on_interrupt_change(self, cpus) -> None:
        """The GIC may now signal an IRQ to `cpus` (any thread)."""
        if self.scheduler.interrupt_changed(cpus):
            self.wake()

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.uc = None
        self.engine.close()
