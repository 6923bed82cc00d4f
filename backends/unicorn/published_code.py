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

from collections import Counter
from collections.abc import Callable

from unicorn import Uc

from petard.core.arch import sysregs
from petard.core.layout import PAGE_SIZE
from petard.core.memory import GuestMemory

from . import cpu
from .guest_va import TranslationFault, translate

# (VA of the page, its physical address, stats) -> whether spin hints were patched into it.
PagePatcher = Callable[[int, int, Counter], bool]


class PublishedCode:
    """For the engine `uc`, whose current vCPU published the pages; `patch_page` (the SMP
    spin-hint patcher, or None) may write into a published page before it runs."""

    def __init__(self, uc: Uc, memory: GuestMemory, kernel_region: tuple[int, int] | None,
                 patch_page: PagePatcher | None):
        self.uc = uc
        self.memory = memory
        self.patch_page = patch_page
        self._image = range(kernel_region[0], sum(kernel_region)) if kernel_region is not None else range(0)
        # VA - PA of the kernel image's mapping, once two published pages agree on it (one
        # page alone could be a single-page alias, such as a fixmap slot).
        self._image_va_offset: int | None = None
        self._offset_seen: int | None = None
        self._first_page: int | None = None

    def on_ic_ivau(self, page: int, stats: Counter) -> None:
        """The guest published the page at VA `page`."""
        physical = self._physical(page)
        if physical is None:
            return
        patched = self.patch_page is not None and self.patch_page(page, physical, stats)
        if patched or physical not in self._image:
            drop_translations_of_physical_page(self.uc, physical)
            stats["published-page-invalidations"] += 1

    def _physical(self, page: int) -> int | None:
        offset = self._image_va_offset
        if offset is not None and page - offset in self._image:
            return page - offset        # the image stays mapped where it is (no walk)
        try:
            physical = translate(self.uc, self.memory.read_u64, page)
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


def drop_translations_of_physical_page(uc: Uc, physical: int) -> None:
    sctlr = cpu.read_sysreg(uc, sysregs.SCTLR_EL1)
    cpu.write_sysreg(uc, sysregs.SCTLR_EL1, sctlr & ~sysregs.SCTLR_EL1_M)
    try:
        uc.ctl_remove_cache(physical, physical + PAGE_SIZE)
    finally:
        cpu.write_sysreg(uc, sysregs.SCTLR_EL1, sctlr)
