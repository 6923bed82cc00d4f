"""The interrupt state both emulated GICs share: per-INTID enable/pending/active/priority/
trigger, per-CPU banks for SGIs and PPIs, SPI targeting, and the CPU-interface logic
(priority mask, running priority, acknowledge, end of interrupt).

`gicv2.py` and `gicv3.py` are thin register front ends over this model. Device interrupt
lines arrive through `set_level()` from any thread; everything else runs on the vCPU thread.
`on_change(cpu_indices)` is called (outside the lock) when an interrupt may have become
deliverable to those CPUs, so the vCPU loop can stop at its next safe point and inject.
"""

import threading
from typing import Callable, Iterable

from petard.core.arch import gic


class _Irq:
    __slots__ = ("enabled", "latched", "level", "active", "edge", "priority", "sgi_sources")

    def __init__(self, edge: bool):
        self.enabled = False
        self.latched = False        # pending from an edge, a write to ISPENDR or an SGI
        self.level = False          # input line level (level-triggered interrupts)
        self.active = False
        self.edge = edge
        self.priority = 0
        self.sgi_sources: set[int] = set()   # GICv2: CPUs that sent this SGI and wait for it

    @property
    def pending(self) -> bool:
        return self.latched or (self.level and not self.edge)


class _CpuInterface:
    __slots__ = ("enabled", "priority_mask", "binary_point", "eoi_mode_split", "active_stack")

    def __init__(self):
        self.enabled = False
        self.priority_mask = 0
        self.binary_point = 0
        self.eoi_mode_split = False     # EOI only drops priority; deactivation via DIR
        self.active_stack: list[tuple[int, int]] = []   # (priority, intid), priority drop order

    @property
    def running_priority(self) -> int:
        return self.active_stack[-1][0] if self.active_stack else gic.IDLE_PRIORITY


class GicModel:
    def __init__(self, cpu_count: int, irq_count: int):
        self.cpu_count = cpu_count
        self.irq_count = irq_count
        # SGIs are always edge; PPIs and SPIs reset as level-sensitive.
        self.private = [[_Irq(edge=intid < gic.SGI_COUNT) for intid in range(gic.PRIVATE_INTID_COUNT)]
                        for _ in range(cpu_count)]
        self.shared = {intid: _Irq(edge=False)
                       for intid in range(gic.PRIVATE_INTID_COUNT, irq_count)}
        self.spi_target_mask = {intid: 1 for intid in self.shared}     # CPU bitmask
        self.cpus = [_CpuInterface() for _ in range(cpu_count)]
        self.distributor_enabled = False
        self.lock = threading.RLock()
        self.on_change: Callable[[Iterable[int]], None] = lambda cpus: None
        # Candidates for delivery: INTIDs whose pending state may be set.
        self._pending_private = [set() for _ in range(cpu_count)]
        self._pending_shared: set[int] = set()

    # --- per-INTID access for register front ends ---------------------------------

    def irq(self, cpu: int, intid: int) -> _Irq | None:
        if intid < gic.PRIVATE_INTID_COUNT:
            return self.private[cpu][intid]
        return self.shared.get(intid)

    def track(self, cpu: int, intid: int, irq: _Irq) -> None:
        """Note `intid` as a delivery candidate if it is pending."""
        if irq.pending:
            if intid < gic.PRIVATE_INTID_COUNT:
                self._pending_private[cpu].add(intid)
            else:
                self._pending_shared.add(intid)

    def _targets(self, cpu: int, intid: int) -> list[int]:
        if intid < gic.PRIVATE_INTID_COUNT:
            return [cpu]
        mask = self.spi_target_mask.get(intid, 0)
        return [index for index in range(self.cpu_count) if mask >> index & 1]

    def set_pending(self, cpu: int, intid: int, pending: bool) -> None:
        """ISPENDR/ICPENDR semantics (also used for SGIs on GICv3)."""
        with self.lock:
            irq = self.irq(cpu, intid)
            if irq is None:
                return
            irq.latched = pending
            if not pending:
                irq.sgi_sources.clear()
            self.track(cpu, intid, irq)
        if pending:
            self.on_change(self._targets(cpu, intid))

    def send_sgi(self, target_cpu: int, intid: int, source_cpu: int) -> None:
        with self.lock:
            irq = self.private[target_cpu][intid]
            irq.latched = True
            irq.sgi_sources.add(source_cpu)
            self._pending_private[target_cpu].add(intid)
        self.on_change([target_cpu])

    def set_enabled(self, cpu: int, intid: int, enabled: bool) -> None:
        with self.lock:
            irq = self.irq(cpu, intid)
            if irq is None:
                return
            irq.enabled = enabled
        if enabled and irq.pending:
            self.on_change(self._targets(cpu, intid))

    def set_active(self, cpu: int, intid: int, active: bool) -> None:
        with self.lock:
            irq = self.irq(cpu, intid)
            if irq is not None:
                irq.active = active

    def set_spi_targets(self, intid: int, cpu_mask: int) -> None:
        if intid in self.spi_target_mask:
            self.spi_target_mask[intid] = cpu_mask

    def changed(self, cpus: Iterable[int] | None = None) -> None:
        """A front end changed enables/masks: re-evaluate delivery."""
        self.on_change(range(self.cpu_count) if cpus is None else cpus)

    # --- interrupt lines ------------------------------------------------------------

    def set_level(self, intid: int, level: bool, cpu: int = 0) -> None:
        """Drive an interrupt input (SPI, or the PPI of `cpu`). Thread-safe."""
        with self.lock:
            irq = self.irq(cpu, intid)
            if irq is None or irq.level == level:
                return
            irq.level = level
            if level and irq.edge:
                irq.latched = True
            self.track(cpu, intid, irq)
            deliverable = irq.pending and irq.enabled
        if deliverable:
            self.on_change(self._targets(cpu, intid))

    # --- CPU interface ------------------------------------------------------------

    def _highest_pending(self, cpu: int) -> tuple[int, int] | None:
        """(priority, intid) of the best pending, enabled, inactive interrupt for `cpu`."""
        best = None
        private = self.private[cpu]
        candidates = self._pending_private[cpu]
        for intid in list(candidates):
            irq = private[intid]
            if not irq.pending:
                candidates.discard(intid)
            elif irq.enabled and not irq.active:
                key = (irq.priority, intid)
                if best is None or key < best:
                    best = key
        bit = 1 << cpu
        for intid in list(self._pending_shared):
            irq = self.shared[intid]
            if not irq.pending:
                self._pending_shared.discard(intid)
            elif irq.enabled and not irq.active and self.spi_target_mask[intid] & bit:
                key = (irq.priority, intid)
                if best is None or key < best:
                    best = key
        return best

    def highest_pending_intid(self, cpu: int) -> int:
        with self.lock:
            best = self._highest_pending(cpu)
        return gic.SPURIOUS_INTID if best is None else best[1]

    def _signalled(self, cpu: int) -> tuple[int, int] | None:
        if not self.distributor_enabled:
            return None
        interface = self.cpus[cpu]
        if not interface.enabled:
            return None
        best = self._highest_pending(cpu)
        if best is None:
            return None
        priority = best[0]
        if priority >= interface.priority_mask or priority >= interface.running_priority:
            return None
        return best

    def irq_signalled(self, cpu: int) -> bool:
        """Would the CPU interface assert IRQ to this CPU now?"""
        with self.lock:
            return self._signalled(cpu) is not None

    def acknowledge(self, cpu: int) -> tuple[int, int]:
        """IAR read: (intid, source cpu for SGIs or 0); (1023, 0) if nothing is signalled."""
        with self.lock:
            best = self._signalled(cpu)
            if best is None:
                return gic.SPURIOUS_INTID, 0
            priority, intid = best
            irq = self.irq(cpu, intid)
            source = 0
            if irq.sgi_sources:
                source = min(irq.sgi_sources)
                irq.sgi_sources.discard(source)
                irq.latched = bool(irq.sgi_sources)
            else:
                irq.latched = False
            irq.active = True
            self.cpus[cpu].active_stack.append((priority, intid))
            return intid, source

    def end_of_interrupt(self, cpu: int, intid: int) -> None:
        """EOIR write: priority drop, and deactivation unless EOI mode is split."""
        with self.lock:
            stack = self.cpus[cpu].active_stack
            for position in range(len(stack) - 1, -1, -1):
                if stack[position][1] == intid:
                    del stack[position]
                    break
            if not self.cpus[cpu].eoi_mode_split:
                self._deactivate(cpu, intid)
        self.on_change([cpu])

    def deactivate(self, cpu: int, intid: int) -> None:
        """DIR write."""
        with self.lock:
            self._deactivate(cpu, intid)
        self.on_change([cpu])

    def _deactivate(self, cpu: int, intid: int) -> None:
        irq = self.irq(cpu, intid)
        if irq is not None:
            irq.active = False
            self.track(cpu, intid, irq)
