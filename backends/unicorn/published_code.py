"""Pages the guest publishes as code (`IC IVAU`), and the translations they may have left.

Unicorn drops the translations of a page when a guest instruction stores to it, but not
when the VMM writes guest RAM: a device's DMA (a program read from a drive into page-cache
pages that held other code before) or the spin-hint patches of smp.py. Before executing a
page written behind its back, Linux cleans and invalidates it to the point of unification
(`DC CVAU`, `IC IVAU`), as the architecture requires; the engine passes each such page here
(once per page and slice, and again after any device access).

Pages of the kernel image are only ever written by the guest itself, so they need nothing
(unless spin hints were patched into them). For any other page the physical page is found
with a guest page-table walk and its translations are dropped by physical address:
Unicorn's `ctl_remove_cache` looks a *virtual* address up as an instruction fetch in the
current regime, which faults (and would deliver an abort to the guest) for the kernel's
non-executable linear-map alias through which Linux cleans user pages. So the lookup is done
with the stage-1 MMU briefly off, where every address is itself and executable; no guest
instruction runs meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from petard.core.arch import sysregs

from . import cpu
from .guest_va import TranslationFault, translate

if TYPE_CHECKING:
    from .vcpu import UnicornVcpu
    from .vm import UnicornVm

PAGE_SIZE = 0x1000


class PublishedCode:
    def __init__(self, vm: UnicornVm):
        self.vm = vm
        self.memory = vm.memory
        region = vm.machine.kernel_region
        self._image = range(region[0], region[0] + region[1]) if region is not None else range(0)
        # VA - PA of the kernel image's mapping, once two published pages agree on it (one
        # page alone could be a single-page alias, such as a fixmap slot).
        self._image_va_offset: int | None = None
        self._offset_seen: int | None = None
        self._first_page: int | None = None

    def on_ic_ivau(self, vcpu: UnicornVcpu, page: int) -> None:
        """The guest published the page at VA `page`."""
        physical = self._physical(vcpu, page)
        if physical is None:
            return
        smp = self.vm.smp
        patched = smp is not None and smp.patch_published_page(vcpu, page, physical)
        if patched or physical not in self._image:
            drop_translations_of_physical_page(vcpu, physical)

    def _physical(self, vcpu: UnicornVcpu, page: int) -> int | None:
        offset = self._image_va_offset
        if offset is not None and page - offset in self._image:
            return page - offset        # the image stays mapped where it is (no walk)
        try:
            physical = translate(vcpu.uc, self.memory.read_u64, page)
        except TranslationFault:
            return None
        if not self.memory.contains(physical, PAGE_SIZE):
            return None
        if physical in self._image:
            offset = page - physical
            if offset == self._offset_seen and page != self._first_page:
                self._image_va_offset = offset
            else:
                self._offset_seen, self._first_page = offset, page
        return physical


def drop_translations_of_physical_page(vcpu: UnicornVcpu, physical: int) -> None:
    uc = vcpu.uc
    sctlr = cpu.read_sysreg(uc, sysregs.SCTLR_EL1)
    cpu.write_sysreg(uc, sysregs.SCTLR_EL1, sctlr & ~sysregs.SCTLR_EL1_M)
    try:
        uc.ctl_remove_cache(physical, physical + PAGE_SIZE)
    finally:
        cpu.write_sysreg(uc, sysregs.SCTLR_EL1, sctlr)
    vcpu.stats["published-page-invalidations"] += 1
