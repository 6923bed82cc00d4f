"""The one Unicorn engine all vCPUs of a VM run on, and switching it between them.

Every vCPU runs on the same engine, so they share one translation cache, as QEMU's vCPUs
share theirs: code is translated once however many vCPUs run it, and a guest write to
code drops the stale translations for all of them. A vCPU's registers (the whole CPU
state, system registers and exclusive monitor included) live in a saved Unicorn context
while another vCPU runs; `activate` swaps them between slices. The softmmu TLB is not part
of a context, and vCPUs have their own page tables, so it is flushed at every switch (which
also stands in for the TLB maintenance other vCPUs broadcast meanwhile).

Hooks and MMIO ranges are registered once here and act for `current`, the vCPU whose
context is loaded, through the few methods of `ports.HookTarget`. The hottest hooks go
through the native filters (hook_filter.py), whose gate holds the current vCPU's deadline
and wanted-interrupt flag. The engine also reads guest instructions by virtual address for
everyone (`fetch`), in the current vCPU's translation regime.

Every `IC IVAU` page goes to the `on_ic_ivau` callable the VM gives (published_code.py drops
the translations of pages the VMM wrote behind Unicorn's back: device DMA, spin-hint
patches).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache

from unicorn import (UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH, UC_HOOK_MEM_UNMAPPED,
                     UC_MEM_FETCH_UNMAPPED, UC_PROT_ALL)
from unicorn.unicorn_py3.unicorn import UcContext

from petard.core.arch import pstate as ps
from petard.core.arch import sysregs
from petard.core.layout import PAGE_SIZE
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus

from . import cpu, hook_filter, raw_hooks
from .gic_common import GicMmioRegion
from .guest_va import InstructionReader
from .idle_exit import IdleExitLearner
from .ports import HookTarget
from .syndrome import ExceptionDetailsReader

RUN_FOREVER = (1 << 64) - 1
# Addresses below this are EL0 (TTBR0) virtual addresses.
USER_VA_END = 0x0000_FFFF_FFFF_FFFF
PAGE_MASK = ~(PAGE_SIZE - 1) & ((1 << 64) - 1)


@lru_cache(maxsize=1)
def _sys_classes() -> hook_filter.ClassTable:
    """Which SYS operations `SharedEngine._on_ic_ivau` acts on: IC IVAU, once per page and
    slice."""
    return hook_filter.class_table([(sysregs.IC_IVAU, hook_filter.RegisterClass.CALL_ONCE_PER_PAGE)])


class SharedEngine:
    """`on_ic_ivau(page, stats)` is told of every page the guest publishes as code."""

    def __init__(self, memory: GuestMemory, bus: MmioBus, gic_regions: Sequence[GicMmioRegion],
                 exception_details: ExceptionDetailsReader, msr_classes: hook_filter.ClassTable,
                 on_ic_ivau: Callable[[int, Counter], None]):
        self.memory = memory
        self.bus = bus
        self.uc = cpu.create_engine()
        self.current: HookTarget | None = None
        self.gate = hook_filter.HookGate(page_mask=PAGE_MASK, unmask_bit=ps.PSTATE_I)
        self.instructions = InstructionReader(memory.read_u64, memory.read_u32)
        self.idle_exit = IdleExitLearner(self.uc, self.fetch, lambda: self.current.on_idle_exit())
        self.user_block_hook_installed = False
        self.switches = 0
        self.exception_details = exception_details.bind(self.uc)
        self._on_ic_ivau_page = on_ic_ivau
        self._map(gic_regions, msr_classes)

    def _map(self, gic_regions: Sequence[GicMmioRegion], msr_classes: hook_filter.ClassTable) -> None:
        uc, memory = self.uc, self.memory
        uc.mem_map_ptr(memory.base, memory.size, UC_PROT_ALL, memory.host_address)
        for region in self.bus.regions():
            self._map_mmio(region.base, region.size, region.read, region.write, device=True)
        for region in gic_regions:
            self._map_mmio(region.base, region.size,
                           lambda offset, size, read=region.read: read(self.current.index, offset, size),
                           lambda offset, size, value, write=region.write:
                               write(self.current.index, offset, size, value))
        # Accesses to unmapped physical addresses (outside RAM) behave like KVM's unhandled
        # MMIO: the bus logs them and reads return 0. Bounded so that RAM keeps its fast path.
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped, None, 0, memory.base - 1)
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped, None, memory.end, RUN_FOREVER)
        raw_hooks.add_interrupt_hook(uc, lambda uc_, intno: self.current.on_exception(uc_, intno))
        hook_filter.add_msr_hook(uc, self.gate, msr_classes,
                                 lambda uc_, reg, cp, _ud: self.current.on_msr(uc_, reg, cp))
        hook_filter.add_sys_hook(uc, self.gate, _sys_classes(), self._on_ic_ivau)

    def initial_context(self, mpidr: int) -> UcContext:
        """The firmware-level CPU state of a vCPU with this MPIDR, as a context to load."""
        cpu.configure_firmware_state(self.uc, mpidr)
        return self.uc.context_save()

    def fetch(self, va: int, cache: bool = True) -> int:
        """The instruction word at guest virtual address `va`, for the current vCPU's page
        tables (raises guest_va.TranslationFault when unmapped)."""
        return self.instructions.fetch(self.uc, va, cache)

    # --- switching ---------------------------------------------------------------------

    def activate(self, vcpu: HookTarget) -> None:
        """Load `vcpu`'s CPU state into the engine (saving the current one's)."""
        previous = self.current
        if previous is vcpu:
            return
        uc = self.uc
        if previous is not None:
            uc.context_update(previous.context)
        uc.context_restore(vcpu.context)
        uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        self.current = vcpu
        self.gate.stop_deadline_ns = vcpu.own_stop_deadline_ns
        self.gate.irq_wanted = vcpu.own_irq_wanted
        self.switches += 1

    def begin_slice(self) -> None:
        self.gate.last_page = hook_filter.NO_PAGE

    # --- hooks ---------------------------------------------------------------------------

    def install_user_block_hook(self) -> None:
        """Stop points in user space (added once the kernel runs at its high VA: at reset
        the kernel runs at low physical addresses, which this hook would slow down)."""
        hook_filter.add_block_hook(self.uc, self.gate,
                                   lambda uc_, address, size, _ud: self.current.on_user_block(),
                                   0, USER_VA_END)
        self.user_block_hook_installed = True

    def _on_ic_ivau(self, uc, _reg, cp, _user_data) -> bool:
        # Every line of a page comes through here: the native filter passes a page on once
        # per slice and per device access (gate.last_page), after which a device may have
        # written it again.
        vcpu = self.current
        try:
            page = cp.val & PAGE_MASK
            if page != self.gate.last_page:
                self.gate.last_page = page
                self._on_ic_ivau_page(page, vcpu.stats)
        except Exception as error:      # never let an exception unwind through Unicorn
            vcpu.fail(f"internal error in the IC IVAU hook: {error!r}")
        return False

    def _map_mmio(self, base: int, size: int, read, write, device: bool = False) -> None:
        """MMIO through raw callbacks (the binding's wrapper costs ~2 us per access; the
        console alone makes ~27k accesses per boot). Device errors are the bus region's
        to handle; anything escaping it is an internal error that ends the VM. A write to a
        device may make it write guest RAM: IC IVAU then acts on every page again."""
        gate = self.gate

        def on_read(offset, width):
            try:
                return read(offset, width)
            except Exception as error:
                self.current.fail(f"internal error in MMIO read at {base + offset:#x}: {error!r}")
                return 0

        def on_write(offset, width, value):
            try:
                if device:
                    gate.last_page = hook_filter.NO_PAGE
                write(offset, width, value)
            except Exception as error:
                self.current.fail(f"internal error in MMIO write at {base + offset:#x}: {error!r}")

        raw_hooks.mmio_map(self.uc, base, size, on_read, on_write)

    def _on_unmapped(self, uc, access, address, size, value, _user_data) -> bool:
        if access == UC_MEM_FETCH_UNMAPPED:
            return False                # executing from nowhere: a fatal error
        page = address & PAGE_MASK
        self.current.stats["unmapped-page-maps"] += 1
        bus = self.bus
        self._map_mmio(page, PAGE_SIZE, lambda offset, sz: bus.read(page + offset, sz),
                       lambda offset, sz, val: bus.write(page + offset, sz, val))
        return True

    def close(self) -> None:
        self.uc = None
