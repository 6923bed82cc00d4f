"""What only matters with more than one vCPU (all on the VM's one engine, run round-robin):
spin-wait yielding.

A kernel spin loop (qspinlock, csd_lock_wait, stop_machine) has no MSR, so the slice
deadline would not stop it while the vCPU it waits for is not running. The kernel's spin
hints are patched into HVC calls to the VMM (spin_sites.py); at each one the slice ends if
another vCPU could run. Code the guest publishes later (modules, BPF, alternatives and
static keys patched into the text) is patched when the guest makes it executable with
IC IVAU on a kernel code address (the upper half of the kernel VA space; Linux cleans user
pages through the linear map, in the lower half, and those are not touched).

Cache and TLB maintenance need nothing else here: the vCPUs share one translation cache
(a guest write to code drops its translations for every vCPU) and the engine flushes the
TLB whenever it switches vCPUs (engine.py).

Nothing here is installed for a single vCPU.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from petard.core.arch import pstate as ps
from petard.core.arch import sysregs

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


@lru_cache(maxsize=1)
def _sys_classes() -> hook_filter.ClassTable:
    """Which SYS operations `SmpSupport._on_sys` acts on: IC IVAU, once per page and slice."""
    return hook_filter.class_table([(sysregs.IC_IVAU, hook_filter.RegisterClass.CALL_ONCE_PER_PAGE)])


class SmpSupport:
    def __init__(self, vm: UnicornVm):
        self.vm = vm
        self.spin_site_count = self._patch_spin_sites()
        self.published_code_va_start = KERNEL_CODE_VA_START
        self._kernel_image_pages: dict[int, int] = {}      # kernel image VA page -> PA
        self._spin_call_sites: dict[int, bool] = {}     # HVC address (VA) -> is a spin call
        self._repatched_pages: set[int] = set()     # VAs whose translations must go
        engine = vm.engine
        hook_filter.add_sys_hook(engine.uc, engine.gate, _sys_classes(),
                                 lambda uc, reg, cp, _ud: self._on_sys(uc, reg, cp, engine.current))

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

    # --- hooks ----------------------------------------------------------------------

    def _on_sys(self, uc, _reg, cp, vcpu: UnicornVcpu) -> bool:
        # IC IVAU comes per cache line (the native filter passes each page on once per slice).
        try:
            page = cp.val & _PAGE_MASK
            gate = vcpu.engine.gate
            if page != gate.last_page:
                gate.last_page = page
                if page >= self.published_code_va_start:
                    self._patch_published_page(vcpu, page)
        except Exception as error:      # never let an exception unwind through Unicorn
            vcpu.fail(f"internal error in SYS hook: {error!r}")
        return False

    def _patch_published_page(self, vcpu: UnicornVcpu, page: int) -> None:
        """Kernel code at `page` (VA) is being made executable: patch its spin hints. The
        translations of the page were dropped when the guest wrote the code; any made since
        are dropped before the next slice."""
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
            self._repatched_pages.add(page)
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
        vcpu.stats["repatched-page-invalidations"] += len(pages)

    def before_slice(self, vcpu: UnicornVcpu) -> None:
        """`vcpu` (now current) is about to run a slice."""
        vcpu.engine.gate.last_page = hook_filter.NO_PAGE
        if self._repatched_pages:
            self._drop_translations(vcpu, self._repatched_pages)
            self._repatched_pages.clear()
