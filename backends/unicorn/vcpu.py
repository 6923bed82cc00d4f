"""One emulated vCPU: its CPU state (a context of the VM's shared engine, engine.py), its
timer, what its hooks do, and one run slice.

Execution only ever stops at *safe points* (never `emu_stop` from another thread or from an
MMIO callback, both of which make Unicorn re-execute instructions):
  * the MSR hook, when the slice deadline has passed (the MSR is not executed and re-runs),
  * a block hook bounded to EL0 addresses (installed once the kernel runs at its high VA),
  * "daif trick": with an interrupt wanted, a guest `msr daif, xN` that unmasks IRQs is
    performed here and emulation stops right after it,
  * the learned idle exit (see idle_exit.py),
  * exceptions (HVC, SVC, aborts, traps) once the deadline has passed, and with several
    vCPUs the patched spin-wait hints (HVC calls, see spin_sites.py) when another vCPU could
    run,
  * WFI, which makes `emu_start` return by itself.
Every stop goes through `stop(reason)`, and `run_slice` returns it as a `VcpuStop` value; the
VM's loop decides what it means (halt, power off, end the VM). At a slice boundary the vCPU
updates the timer, injects a pending IRQ if PSTATE.I is clear, and otherwise marks the
interrupt as wanted.

Synchronous exceptions arrive in one UC_HOOK_INTR callback and are entered into the guest's
vector table here (HVC goes to PSCI, undefined-instruction traps of ICC_* reads to the GIC).
"""

from __future__ import annotations

import time
from collections import Counter
from functools import lru_cache

from unicorn import UcError

from petard.core.arch import insn as a64
from petard.core.arch import pstate as ps
from petard.core.arch import psci as psci_ids
from petard.core.arch import sysregs
from petard.core.arch.sysregs import SysReg, is_icc_el1_register
from petard.core.vcpu_state import VcpuState

from . import cpu, cpu_state, hook_filter, qemu_exceptions
from .engine import RUN_FOREVER, SharedEngine
from .exception_entry import ExceptionKind, UnsupportedExceptionSource, enter_exception
from .gic_common import EmulatedGic
from .guest_va import TranslationFault
from .ports import FINAL_REASONS, PowerState, StopReason, VcpuStop
from .psci import PsciFirmware
from .smp import SmpSupport
from .timer import WRITTEN_REGISTERS as TIMER_REGISTERS, GenericTimer

_KERNEL_VA_START = 0xFFFF_0000_0000_0000
_DAIF = tuple(sysregs.DAIF)
_PSCI_ARGUMENTS = cpu.RegisterBatch(cpu.X_REGISTERS[:4])     # function id, arguments 1-3
_SMC_NOT_SUPPORTED = (1 << 64) - 1


@lru_cache(maxsize=1)
def msr_classes() -> hook_filter.ClassTable:
    """Which MSRs `UnicornVcpu.on_msr` acts on (besides ending the slice at its deadline)."""
    Class = hook_filter.RegisterClass
    icc = [SysReg(3, 0, crn, crm, op2) for crn in range(16) for crm in range(16) for op2 in range(8)]
    return hook_filter.class_table(
        [(sysregs.DAIF, Class.CALL_IF_UNMASKING)]
        + [(reg, Class.CALL) for reg in TIMER_REGISTERS]
        + [(reg, Class.CALL) for reg in icc if is_icc_el1_register(reg)])


class UnicornVcpu:
    def __init__(self, index: int, mpidr: int, engine: SharedEngine, gic: EmulatedGic,
                 psci: PsciFirmware, smp: SmpSupport | None):
        self.index = index
        self.mpidr = mpidr
        self.engine = engine
        self.gic = gic
        self.psci = psci
        self.smp = smp
        self.uc = engine.uc             # holds this vCPU's state only while it is current
        self.context = engine.initial_context(mpidr)
        self.power = PowerState.OFF
        self.pending_entry: tuple[int, int, int] | None = None   # (entry PA, x0, PSTATE)
        self.timer = GenericTimer()
        self.halted = False             # stopped at WFI, waiting for an interrupt
        self.own_irq_wanted = False
        self.own_stop_deadline_ns = 0
        self.irq_wanted = False         # stop at the next point where IRQs get unmasked
        self.kicked = False             # an interrupt arrived for it while another vCPU ran
        self.stop_deadline_ns = 0       # safe points stop once monotonic time reaches this
        self._stop: VcpuStop | None = None     # why the slice in progress ends
        self.stats: Counter[str] = Counter()

    # The two fields below are read by the native hook filters from the engine's gate while
    # this vCPU is current (any thread may set them: request_stop, interrupt routing).

    @property
    def irq_wanted(self) -> bool:
        return self.own_irq_wanted

    @irq_wanted.setter
    def irq_wanted(self, wanted: bool) -> None:
        self.own_irq_wanted = wanted
        if self.engine.current is self:
            self.engine.gate.irq_wanted = wanted

    @property
    def stop_deadline_ns(self) -> int:
        return self.own_stop_deadline_ns

    @stop_deadline_ns.setter
    def stop_deadline_ns(self, deadline: int) -> None:
        self.own_stop_deadline_ns = deadline
        if self.engine.current is self:
            self.engine.gate.stop_deadline_ns = deadline

    @property
    def is_current(self) -> bool:
        return self.engine.current is self

    # --- power (the VM's loop and PSCI decide; these carry it out) -----------------------

    def power_on(self, entry: int, x0: int, pstate: int = ps.BOOT_PSTATE) -> None:
        """Start at `entry` with x0 at this vCPU's next turn (boot, PSCI CPU_ON)."""
        self.pending_entry = (entry, x0, pstate)
        self.power = PowerState.ON_PENDING

    def power_off(self) -> None:
        self.power = PowerState.OFF
        self.halted = False

    def halt(self) -> None:
        """Wait in WFI until an interrupt is signalled."""
        self.halted = True

    def _start_pending(self) -> None:
        entry, x0, pstate = self.pending_entry
        self.pending_entry = None
        uc = self.uc
        cpu.write_sysreg(uc, sysregs.SCTLR_EL1, sysregs.SCTLR_EL1_RESET)
        cpu.set_entry_state(uc, entry, pstate, x0)
        self.halted = False
        self.power = PowerState.ON

    def timer_deadline_ns(self) -> int | None:
        return self.timer.next_deadline_ns()

    # --- the run slice -----------------------------------------------------------------

    def run_slice(self, slice_ns: int, deadline_ns: int | None = None) -> VcpuStop:
        """Run until the next safe stop after `slice_ns` (or after the monotonic time
        `deadline_ns`, if earlier), WFI, or a stop for good; say why it stopped."""
        self.engine.activate(self)
        if self.power is PowerState.ON_PENDING:
            self._start_pending()
        self.update_timer()
        self._stop = None
        self._deliver_interrupt()
        if self._stop is not None:
            return self._stop
        uc = self.uc
        self.engine.begin_slice()
        self.stop_deadline_ns = time.monotonic_ns() + slice_ns
        if deadline_ns is not None and deadline_ns < self.stop_deadline_ns:
            self.stop_deadline_ns = deadline_ns
        self.stats["slices"] += 1
        try:
            uc.emu_start(cpu.read_reg(uc, cpu.PC), RUN_FOREVER)
        except UcError as error:
            return self._final_stop_or(f"emulation failed: {error}")
        except Exception as error:     # raised in a callback (e.g. the GIC model) and re-raised
            return self._final_stop_or(f"internal error during emulation: {error!r}")
        if not self.engine.user_block_hook_installed and cpu.read_reg(uc, cpu.PC) >= _KERNEL_VA_START:
            self.engine.install_user_block_hook()
        if self._stop is not None:
            return self._stop
        return self._natural_return()

    def _final_stop_or(self, message: str) -> VcpuStop:
        if self._stop is not None and self._stop.reason in FINAL_REASONS:
            return self._stop
        return VcpuStop(StopReason.FATAL, message)

    def _natural_return(self) -> VcpuStop:
        """emu_start returned on its own: WFI (Unicorn returns after executing it)."""
        uc = self.uc
        pc = cpu.read_reg(uc, cpu.PC)
        try:
            word = self.engine.fetch(pc - a64.INSN_SIZE)
        except TranslationFault:
            word = None
        if word != a64.WFI:
            return VcpuStop(StopReason.UNEXPLAINED)
        self.stats["wfi"] += 1
        if cpu.read_reg(uc, cpu.PSTATE) & ps.PSTATE_I:
            # Linux idles with IRQs masked and unmasks with `msr daifclr` (not hookable):
            # learn where that happens so we can stop there when an interrupt is pending.
            self.engine.idle_exit.learn(pc, cpu.read_reg(uc, cpu.X_REGISTERS[30]), self.stats)
        return VcpuStop(StopReason.WFI)

    def wake_if_interrupted(self) -> bool:
        """For a halted vCPU: an interrupt (even masked by PSTATE) ends WFI."""
        self.update_timer()
        if self.gic.irq_signalled(self.index):
            self.halted = False
            self.irq_wanted = True
            return True
        return False

    def update_timer(self) -> None:
        """Recompute the timer's interrupt levels (and, for the current vCPU, the ISTATUS
        bits the guest reads; a vCPU's are brought up to date when it becomes current)."""
        gic = self.gic
        for intid, level in self.timer.update(self.uc if self.is_current else None):
            gic.set_ppi_level(self.index, intid, level)

    def _deliver_interrupt(self) -> None:
        if not self.gic.irq_signalled(self.index):
            self.irq_wanted = False
            return
        uc = self.uc
        if cpu.read_reg(uc, cpu.PSTATE) & ps.PSTATE_I:
            self.irq_wanted = True
            return
        try:
            enter_exception(uc, ExceptionKind.IRQ, cpu.read_reg(uc, cpu.PC))
        except UnsupportedExceptionSource as error:
            self._stop = VcpuStop(StopReason.FATAL, str(error))
            return
        self.irq_wanted = False
        self.stats["irqs-injected"] += 1

    def request_stop(self) -> None:
        """Ask for a stop at the next safe point (any thread)."""
        self.stop_deadline_ns = 0

    # --- stopping: the one path -----------------------------------------------------------

    def stop(self, reason: StopReason, message: str = "") -> None:
        """End the run slice in progress for `reason`, at once (from a hook: when it returns).
        A stop for good is not overridden by a later, lesser one."""
        if self._stop is None or (reason in FINAL_REASONS and self._stop.reason not in FINAL_REASONS):
            self._stop = VcpuStop(reason, message)
        self.uc.emu_stop()

    def fail(self, message: str) -> None:
        """From a hook: end the VM with a fatal error."""
        self.stop(StopReason.FATAL, message)

    # --- hooks -------------------------------------------------------------------------

    def on_user_block(self) -> None:
        if time.monotonic_ns() >= self.stop_deadline_ns:
            self.stats["el0-preemptions"] += 1
            self.stop(StopReason.DEADLINE)

    def on_idle_exit(self) -> None:
        """The guest just passed the learned unmask of its idle loop."""
        try:
            if self.irq_wanted and not cpu.read_reg(self.uc, cpu.PSTATE) & ps.PSTATE_I:
                self.stats["idle-exit-stops"] += 1
                self.stop(StopReason.IRQ_UNMASKED)
        except Exception as error:      # never let an exception unwind through Unicorn
            self.fail(f"internal error in the idle-exit hook: {error!r}")

    def on_msr(self, uc, _reg, cp) -> bool:
        try:
            key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
            self.stats["msr-hook"] += 1
            if key == _DAIF:
                if self.irq_wanted and not cp.val & ps.PSTATE_I:
                    self._perform_daif_write_and_stop(cp.val)
                    return True
            elif self.timer.handles(key):
                # The new level reaches the GIC at once: the guest's IRQ handler EOIs right
                # after reprogramming the timer and must not see the old level again.
                intid, level = self.timer.write(uc, key, cp.val)
                self.gic.set_ppi_level(self.index, intid, level)
                return self._skip_instruction(uc)
            elif is_icc_el1_register(key):
                if self.gic.sysreg_write(self.index, SysReg(*key), cp.val):
                    return self._skip_instruction(uc)
            if time.monotonic_ns() >= self.stop_deadline_ns:
                self.stats["msr-deadline-stops"] += 1
                self.stop(StopReason.DEADLINE)
            return False
        except Exception as error:      # never let an exception unwind through Unicorn
            self.fail(f"internal error in MSR hook: {error!r}")
            return False

    @staticmethod
    def _skip_instruction(uc) -> bool:
        """Make the hooked MSR a no-op. Returning True alone is not enough: for registers
        Unicorn does not know (ICC_*) it re-executes the MSR unless PC is moved on."""
        cpu.write_reg(uc, cpu.PC, cpu.read_reg(uc, cpu.PC) + a64.INSN_SIZE)
        return True

    def _perform_daif_write_and_stop(self, value: int) -> None:
        uc = self.uc
        pstate, pc = cpu.read_reg(uc, cpu.PSTATE), cpu.read_reg(uc, cpu.PC)
        cpu.write_reg(uc, cpu.PSTATE, (pstate & ~ps.PSTATE_DAIF_MASK) | (value & ps.PSTATE_DAIF_MASK))
        cpu.rebuild_cached_flags(uc)
        cpu.write_reg(uc, cpu.PC, pc + a64.INSN_SIZE)
        self.stats["daif-unmask-stops"] += 1
        self.stop(StopReason.IRQ_UNMASKED)

    def on_exception(self, uc, intno) -> None:
        try:
            self.stats[f"exception-{intno}"] += 1
            if intno == qemu_exceptions.EXCP_HVC:
                smp = self.smp
                if smp is not None and smp.is_spin_call(cpu.read_reg(uc, cpu.PC) - a64.INSN_SIZE):
                    if smp.should_yield(self, self.stats):
                        self.stop(StopReason.SPIN_YIELD)
                        return
                elif self._call_psci(uc):
                    return
            elif intno == qemu_exceptions.EXCP_SMC:
                cpu.write_reg(uc, cpu.X_REGISTERS[0], _SMC_NOT_SUPPORTED)
            elif intno == qemu_exceptions.EXCP_UDEF and self._emulate_icc_read():
                pass
            elif intno in (qemu_exceptions.EXCP_SWI, qemu_exceptions.EXCP_UDEF,
                           qemu_exceptions.EXCP_PREFETCH_ABORT,
                           qemu_exceptions.EXCP_DATA_ABORT, qemu_exceptions.EXCP_BKPT):
                details = self.engine.exception_details.read()
                is_abort = intno in (qemu_exceptions.EXCP_PREFETCH_ABORT,
                                     qemu_exceptions.EXCP_DATA_ABORT)
                enter_exception(uc, ExceptionKind.SYNCHRONOUS, cpu.read_reg(uc, cpu.PC),
                                details.syndrome, details.fault_address if is_abort else None)
            else:
                self.fail(f"unexpected exception {intno} from the emulator")
                return
            # Exceptions are safe stop points too (busy loops of HVC calls, page faults).
            if time.monotonic_ns() >= self.stop_deadline_ns:
                self.stats["exception-deadline-stops"] += 1
                self.stop(StopReason.DEADLINE)
        except UnsupportedExceptionSource as error:
            self.fail(str(error))
        except Exception as error:
            self.fail(f"internal error in exception hook: {error!r}")

    def _call_psci(self, uc) -> bool:
        """The HVC just made is a PSCI call (PC is already past it); True if it stopped the
        vCPU."""
        outcome = self.psci.call(self, *_PSCI_ARGUMENTS.read(uc))
        if outcome.result is not None:
            cpu.write_reg(uc, cpu.X_REGISTERS[0], psci_ids.to_register(outcome.result))
        if outcome.stop is not None:
            self.stop(outcome.stop)
            return True
        if outcome.yield_soon:
            self.request_stop()
        return False

    def _emulate_icc_read(self) -> bool:
        """An MRS of an ICC_* register (absent from Unicorn's A57): emulate it, skip it."""
        uc = self.uc
        pc = cpu.read_reg(uc, cpu.PC)
        try:
            access = a64.decode_sysreg_access(self.engine.fetch(pc))
        except TranslationFault:
            return False
        if access is None or not access.is_read:
            return False
        value = self.gic.sysreg_read(self.index, access.reg)
        if value is None:
            return False
        if access.rt != a64.ZERO_REGISTER:
            cpu.write_reg(uc, cpu.X_REGISTERS[access.rt], value)
        cpu.write_reg(uc, cpu.PC, pc + a64.INSN_SIZE)
        self.stats["icc-reads"] += 1
        return True

    # --- state ---------------------------------------------------------------------------

    def save_state(self) -> VcpuState:
        """This vCPU's neutral state (loads it into the engine; only between slices). A vCPU
        whose CPU_ON is still pending is saved as started at its entry point."""
        self.engine.activate(self)
        if self.power is PowerState.ON_PENDING:
            self._start_pending()
        state = VcpuState(mpidr=self.mpidr, powered_on=self.power is PowerState.ON)
        cpu_state.read_registers(self.uc, state)
        state.timer = self.timer.save()
        return state

    def restore_state(self, state: VcpuState) -> None:
        """Load a neutral state (before the VM first runs)."""
        self.engine.activate(self)
        cpu_state.write_registers(self.uc, state)
        self.timer.restore(self.uc, state.timer)
        self.pending_entry = None
        self.halted = False
        self.power = PowerState.ON if state.powered_on else PowerState.OFF
