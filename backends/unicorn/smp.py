"""What only matters with more than one vCPU (one Unicorn engine each, run round-robin):

* Coherence between engines. Each engine has its own translated-code cache and TLB, and
  neither notices another engine's writes. Broadcast maintenance seen through the SYS hook
  is replayed on the other vCPUs before their next slice: IC IVAU -> drop the cached
  translations of that page, IC IALLUIS -> drop all, TLBI ...IS -> flush the TLB.
* Spin-wait yielding. A kernel spin loop (qspinlock, csd_lock_wait, stop_machine) has no
  MSR, so the slice deadline would not stop it while the vCPU it waits for is not running.
  The kernel's spin hints are patched into HVC calls to the VMM (spin_sites.py); at each one
  the slice ends if another vCPU could run. Code the guest publishes later (modules, BPF,
  alternatives and static keys patched into the text) is patched when the guest makes it
  executable with IC IVAU on a kernel code address (the upper half of the kernel VA space;
  Linux cleans user pages through the linear map, in the lower half, and those are not
  touched).

Nothing here is installed for a single vCPU.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from unicorn import UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH

from petard.core.arch import pstate as ps
from petard.core.arch import sysregs
from petard.core.arch.sysregs import SysReg

from . import cpu, hook_filter
from .guest_va import TranslationFault, translate
from .spin_sites import SPIN_CALL, find_spin_sites, patch_spin_sites

if TYPE_CHECKING:
    from .vcpu import UnicornVcpu
    from .vm import UnicornVm

PAGE_SIZE = 0x1000
_PAGE_MASK = ~(PAGE_SIZE - 1)
# Linux arm64 (48-bit VA): kernel image, modules, BPF JIT and vmalloc live from here up; the
# linear map (through which user pages are cleaned) lies below.
KERNEL_CODE_VA_START = 0xFFFF_8000_0000_0000
_IC_IVAU = tuple(sysregs.IC_IVAU)
_IC_IALLUIS = tuple(sysregs.IC_IALLUIS)


@lru_cache(maxsize=1)
def _sys_classes() -> hook_filter.ClassTable:
    """Which SYS operations `SmpSupport._on_sys` acts on."""
    Class = hook_filter.RegisterClass
    tlbi = [SysReg(1, op1, 8, crm, op2) for op1 in range(8) for crm in range(16) for op2 in range(8)]
    return hook_filter.class_table(
        [(sysregs.IC_IVAU, Class.CALL_ONCE_PER_PAGE), (sysregs.IC_IALLUIS, Class.CALL)]
        + [(reg, Class.CALL_ONCE_PER_SLICE) for reg in tlbi if sysregs.is_broadcast_tlbi(reg)])


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
        self.spin_site_count = self._patch_spin_sites()
        self.published_code_va_start = KERNEL_CODE_VA_START
        self._kernel_image_pages: dict[int, int] = {}      # kernel image VA page -> PA
        self._spin_call_sites: dict[int, bool] = {}     # HVC address (VA) -> is a spin call

    # --- set-up ---------------------------------------------------------------------

    def _patch_spin_sites(self) -> int:
        """Turn the loaded kernel's spin hints into VMM calls; returns how many."""
        region = self.vm.machine.kernel_region
        if region is None:
            return 0
        base, size = region
        sites = find_spin_sites(self.vm.memory.read(base, size))
        patch_spin_sites(self.vm.memory.write_u32, base, sites)
        return len(sites)

    def attach(self, vcpu: UnicornVcpu) -> None:
        vcpu.coherence = CoherenceState()
        hook_filter.add_sys_hook(vcpu.uc, vcpu.gate, _sys_classes(), self._on_sys, vcpu)

    # --- hooks ----------------------------------------------------------------------

    def _on_sys(self, uc, _reg, cp, vcpu: UnicornVcpu) -> bool:
        # The SYS instructions run ~200k times per boot (mostly DC CVAU / IC IVAU loops over
        # whole pages): the other vCPUs are not running during this slice, so what was already
        # queued for them in this slice needs no second look (vcpu.gate.last_page and
        # slice_flag, which the native filter reads too).
        try:
            key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
            gate = vcpu.gate
            if key == _IC_IVAU:
                page = cp.val & _PAGE_MASK
                if page != gate.last_page:
                    gate.last_page = page
                    if page >= self.published_code_va_start:
                        self._patch_published_page(vcpu, page)
                    for other in self._others(vcpu):
                        other.coherence.pages.add(page)
            elif key == _IC_IALLUIS:
                for other in self._others(vcpu):
                    other.coherence.flush_all_code = True
            elif sysregs.is_broadcast_tlbi(key) and not gate.slice_flag:
                gate.slice_flag = True
                for other in self._others(vcpu):
                    other.coherence.flush_tlb = True
        except Exception as error:      # never let an exception unwind through Unicorn
            vcpu.fail(f"internal error in SYS hook: {error!r}")
        return False

    def _patch_published_page(self, vcpu: UnicornVcpu, page: int) -> None:
        """Kernel code at `page` (VA) is being made executable: patch its spin hints. The
        issuer's own translations of the page were dropped when the guest wrote the code;
        any made since are dropped before its next slice."""
        memory = self.vm.memory
        physical = self._kernel_image_pages.get(page)
        if physical is None:
            try:
                physical = translate(vcpu.uc, memory.read_u64, page)
            except TranslationFault:
                return
            if not memory.contains(physical, PAGE_SIZE):
                return
            region = self.vm.machine.kernel_region
            if region is not None and region[0] <= physical < region[0] + region[1]:
                # The image stays mapped where it is for the whole boot (static keys and
                # alternatives re-publish its pages thousands of times): walk once.
                self._kernel_image_pages[page] = physical
        sites = find_spin_sites(memory.read(physical, PAGE_SIZE))
        if sites:
            patch_spin_sites(memory.write_u32, physical, sites)
            vcpu.coherence.pages.add(page)
            self.spin_site_count += len(sites)
            vcpu.stats["spin-sites-patched-later"] += len(sites)

    def is_spin_call(self, vcpu: UnicornVcpu, hvc_address: int) -> bool:
        """Is the HVC just executed at `hvc_address` one of the patched spin hints?"""
        known = self._spin_call_sites.get(hvc_address)
        if known is None:
            try:
                known = self.vm.instructions.fetch(vcpu.uc, hvc_address) == SPIN_CALL
            except TranslationFault:
                return False
            self._spin_call_sites[hvc_address] = known
        return known

    def on_spin_call(self, vcpu: UnicornVcpu) -> bool:
        """The vCPU is spinning: True if it should give way (another vCPU could run)."""
        vcpu.stats["spin-calls"] += 1
        if self._another_can_run(vcpu):
            vcpu.stats["spin-yields"] += 1
            return True
        return False

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

    @staticmethod
    def _drop_translations(vcpu: UnicornVcpu, pages: set[int]) -> None:
        """Drop the vCPU's translations of the code at these kernel VAs. Unicorn looks the
        VA up in the vCPU's current regime, where kernel pages are out of reach at EL0: a
        vCPU stopped in user space is put in EL1 for the lookups (no instruction runs
        meanwhile) rather than losing all its translations."""
        uc = vcpu.uc
        pstate = cpu.read_reg(uc, cpu.PSTATE)
        at_el0 = ps.exception_level(pstate) == 0
        if at_el0:
            cpu.write_reg(uc, cpu.PSTATE, (pstate & ~ps.PSTATE_MODE_MASK) | ps.MODE_EL1h)
            cpu.rebuild_cached_flags(uc)
        try:
            for page in pages:
                uc.ctl_remove_cache(page, page + PAGE_SIZE)
        finally:
            if at_el0:
                cpu.write_reg(uc, cpu.PSTATE, pstate)
                cpu.rebuild_cached_flags(uc)
        vcpu.stats["coherence-page-invalidations"] += len(pages)

    def before_slice(self, vcpu: UnicornVcpu) -> None:
        """Apply the maintenance other vCPUs broadcast since this one last ran."""
        state = vcpu.coherence
        vcpu.gate.last_page = hook_filter.NO_PAGE
        vcpu.gate.slice_flag = False
        uc = vcpu.uc
        if state.flush_all_code:
            uc.ctl_flush_tb()
            vcpu.stats["coherence-code-flushes"] += 1
        elif state.pages:
            self._drop_translations(vcpu, state.pages)
        state.pages.clear()
        state.flush_all_code = False
        if state.flush_tlb:
            uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
            state.flush_tlb = False
            vcpu.stats["coherence-tlb-flushes"] += 1
