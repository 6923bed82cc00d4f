"""What only matters with more than one vCPU (one Unicorn engine each, run round-robin):

* Coherence between engines. Each engine has its own translated-code cache and TLB, and
  neither notices another engine's writes. Broadcast maintenance seen through the SYS hook
  is replayed on the other vCPUs before their next slice: IC IVAU -> drop the cached
  translations of that page, IC IALLUIS -> drop all, TLBI ...IS -> flush the TLB.
* Spin-wait yielding. A kernel spin loop (qspinlock, csd_lock_wait, stop_machine) has no
  MSR, so the slice deadline would not stop it while the vCPU it waits for is not running.
  Every YIELD and WFE in the kernel image gets a code hook that ends the slice when another
  vCPU could run.

Nothing here is installed for a single vCPU.
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING

from unicorn import UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH, UC_HOOK_CODE, UC_HOOK_INSN
from unicorn import arm64_const as uc_arm64

from petard.core.arch import insn as a64
from petard.core.arch import pstate as ps
from petard.core.arch import sysregs

from . import cpu
from .guest_va import TranslationFault, translate

if TYPE_CHECKING:
    from .vcpu import UnicornVcpu
    from .vm import UnicornVm

_PAGE_MASK = ~0xFFF
_IC_IVAU = tuple(sysregs.IC_IVAU)
_IC_IALLUIS = tuple(sysregs.IC_IALLUIS)
_SPIN_WORDS = (a64.YIELD, a64.WFE)


class CoherenceState:
    """Per-vCPU maintenance owed because of other vCPUs."""

    __slots__ = ("pages", "flush_all_code", "flush_tlb")

    def __init__(self):
        self.pages: set[int] = set()
        self.flush_all_code = False
        self.flush_tlb = False


class SmpSupport:
    def __init__(self, vm: UnicornVm):
        self.vm = vm
        self.spin_offsets = self._scan_spin_sites()

    # --- set-up ---------------------------------------------------------------------

    def _scan_spin_sites(self) -> list[int]:
        """Offsets of YIELD/WFE words in the loaded kernel (data words may match: harmless)."""
        region = self.vm.machine.kernel_region
        if region is None:
            return []
        base, size = region
        data = self.vm.memory.read(base, size - size % 4)
        return [index * 4 for index, (word,) in enumerate(struct.iter_unpack("<I", data))
                if word in _SPIN_WORDS]

    def attach(self, vcpu: UnicornVcpu) -> None:
        vcpu.coherence = CoherenceState()
        vcpu.uc.hook_add(UC_HOOK_INSN, self._on_sys, vcpu, 1, 0, uc_arm64.UC_ARM64_INS_SYS)

    def install_spin_hooks(self, vcpu: UnicornVcpu, kernel_pc: int) -> None:
        """Called once per vCPU when it is first seen running at a kernel VA."""
        region = self.vm.machine.kernel_region
        if region is None or not self.spin_offsets:
            return
        try:
            physical = translate(vcpu.uc, self.vm.memory.read_u64, kernel_pc)
        except TranslationFault:
            return
        if not region[0] <= physical < region[0] + region[1]:
            return                      # not in the kernel image (a module?): try later
        image_va = kernel_pc - (physical - region[0])
        for offset in self.spin_offsets:
            address = image_va + offset
            vcpu.uc.hook_add(UC_HOOK_CODE, self._on_spin, vcpu, address, address)
        vcpu.uc.ctl_flush_tb()
        vcpu.spin_hooks_installed = True
        vcpu.stats["spin-hooks"] += len(self.spin_offsets)

    # --- hooks ----------------------------------------------------------------------

    def _on_sys(self, uc, _reg, cp, vcpu: UnicornVcpu) -> bool:
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if key == _IC_IVAU:
            page = cp.val & _PAGE_MASK
            for other in self._others(vcpu):
                other.coherence.pages.add(page)
        elif key == _IC_IALLUIS:
            for other in self._others(vcpu):
                other.coherence.flush_all_code = True
        elif sysregs.is_broadcast_tlbi(key):
            for other in self._others(vcpu):
                other.coherence.flush_tlb = True
        return False

    def _on_spin(self, uc, address, _size, vcpu: UnicornVcpu) -> None:
        if address == vcpu.slice_start_pc and not vcpu.spin_passed_start:
            vcpu.spin_passed_start = True   # where this slice resumed: let it run once
            return
        if time.monotonic_ns() >= vcpu.stop_deadline_ns or self._another_can_run(vcpu):
            vcpu.stats["spin-yields"] += 1
            vcpu.stopped_by_vmm = True
            uc.emu_stop()

    # --- scheduling and maintenance -------------------------------------------------

    def _others(self, vcpu: UnicornVcpu):
        return (other for other in self.vm.vcpus if other is not vcpu)

    def _another_can_run(self, vcpu: UnicornVcpu) -> bool:
        from .vcpu import PowerState
        for other in self._others(vcpu):
            if other.power is PowerState.ON_PENDING:
                return True
            if other.power is PowerState.ON and (
                    not other.halted or self.vm.gic.irq_signalled(other.index)):
                return True
        return False

    def before_slice(self, vcpu: UnicornVcpu) -> None:
        """Apply the maintenance other vCPUs broadcast since this one last ran."""
        state = vcpu.coherence
        uc = vcpu.uc
        if state.flush_all_code or (
                state.pages and ps.exception_level(uc.reg_read(cpu.PSTATE)) == 0):
            # At EL0 the kernel VAs of IC IVAU cannot be translated: drop everything.
            uc.ctl_flush_tb()
            vcpu.stats["coherence-code-flushes"] += 1
        else:
            for page in state.pages:
                uc.ctl_remove_cache(page, page + 0x1000)
            vcpu.stats["coherence-page-invalidations"] += len(state.pages)
        state.pages.clear()
        state.flush_all_code = False
        if state.flush_tlb:
            uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
            state.flush_tlb = False
            vcpu.stats["coherence-tlb-flushes"] += 1
