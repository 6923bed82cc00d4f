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
(a guest write to code drops its translations for every vCPU, an IC IVAU those of its
page) and the engine flushes the TLB whenever it switches vCPUs (engine.py).

Nothing here is installed for a single vCPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from petard.core.layout import PAGE_SIZE
from petard.core.memory import GuestMemory

from .guest_va import TranslationFault
from .spin_sites import SPIN_CALL, find_spin_sites, patch_spin_sites

# Linux arm64 (48-bit VA): kernel image, modules, BPF JIT and vmalloc live from here up; the
# linear map (through which user pages are cleaned) lies below.
KERNEL_CODE_VA_START = 0xFFFF_8000_0000_0000


class SmpSupport:
    """`fetch(va)` reads an instruction word by guest virtual address; `another_can_run(vcpu)`
    is the scheduler's answer to "could a vCPU other than this one run now"."""

    def __init__(self, memory: GuestMemory, kernel_region: tuple[int, int] | None,
                 fetch: Callable[[int], int], another_can_run: Callable[[object], bool]):
        self.memory = memory
        self.fetch = fetch
        self.another_can_run = another_can_run
        self.spin_site_count = self._patch_spin_sites(kernel_region)
        self.published_code_va_start = KERNEL_CODE_VA_START
        self._spin_call_sites: dict[int, bool] = {}     # HVC address (VA) -> is a spin call

    # --- set-up ---------------------------------------------------------------------

    def _patch_spin_sites(self, kernel_region: tuple[int, int] | None) -> int:
        """Turn the loaded kernel's spin hints into VMM calls; returns how many."""
        if kernel_region is None:
            return 0
        base, size = kernel_region
        sites = find_spin_sites(self.memory.read(base, size))
        patch_spin_sites(self.memory.write_u32, base, sites)
        return len(sites)

    # --- code the guest publishes -------------------------------------------------

    def patch_published_page(self, page: int, physical: int, stats: Counter) -> bool:
        """The guest published the page at VA `page` (physical address `physical`): if it is
        kernel code, patch its spin hints. True if anything was patched."""
        if page < self.published_code_va_start:
            return False
        memory = self.memory
        sites = find_spin_sites(memory.read(physical, PAGE_SIZE))
        if not sites:
            return False
        patch_spin_sites(memory.write_u32, physical, sites)
        self.spin_site_count += len(sites)
        stats["spin-sites-patched-later"] += len(sites)
        return True

    # --- spinning -----------------------------------------------------------------

    def is_spin_call(self, hvc_address: int) -> bool:
        """Is the HVC just executed at `hvc_address` one of the patched spin hints?"""
        known = self._spin_call_sites.get(hvc_address)
        if known is None:
            try:
                known = self.fetch(hvc_address) == SPIN_CALL
            except TranslationFault:
                return False
            self._spin_call_sites[hvc_address] = known
        return known

    def should_yield(self, vcpu: object, stats: Counter) -> bool:
        """`vcpu` is spinning: True if it should give way (another vCPU could run)."""
        stats["spin-calls"] += 1
        if self.another_can_run(vcpu):
            stats["spin-yields"] += 1
            return True
        return False
