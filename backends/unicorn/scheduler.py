"""Which vCPU runs next on the VM's one host thread, and which could run at all.

Round-robin over the vCPUs that can run (powered on, not waiting in WFI, or waiting with an
interrupt signalled); a vCPU an interrupt is signalled to while another runs cuts that one's
slice short and goes next (it is "kicked"); a slice also ends by the next timer deadline of
any other vCPU. The one definition of "runnable" lives here: the VM's loop asks for the next
vCPU, the spin-wait support asks whether another could run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .ports import PowerState, SchedulableVcpu


class _Vcpu(SchedulableVcpu, Protocol):
    def wake_if_interrupted(self) -> bool: ...


class Scheduler:
    def __init__(self, vcpus: Sequence[_Vcpu], irq_signalled: Callable[[int], bool]):
        self.vcpus = vcpus
        self._irq_signalled = irq_signalled
        self._cursor = 0                        # round-robin position
        self.current: _Vcpu | None = None       # the vCPU inside its run slice, if any

    def next_vcpu(self) -> _Vcpu | None:
        """Round-robin over the runnable vCPUs, except that one an interrupt was signalled to
        while another ran goes first (it got that one's slice cut short)."""
        count = len(self.vcpus)
        runnable = []
        for step in range(count):
            vcpu = self.vcpus[(self._cursor + step) % count]
            if vcpu.power is PowerState.OFF:
                continue
            if vcpu.halted and not vcpu.wake_if_interrupted():
                continue
            if vcpu.kicked:
                runnable = [vcpu]
                break
            runnable.append(vcpu)
        if not runnable:
            return None
        chosen = runnable[0]
        chosen.kicked = False
        self._cursor = (chosen.index + 1) % count
        return chosen

    def another_can_run(self, vcpu: _Vcpu) -> bool:
        """Could a vCPU other than `vcpu` run now (a spinning one should give way to it)?"""
        for other in self.vcpus:
            if other is vcpu:
                continue
            if other.power is PowerState.ON_PENDING:
                return True
            if other.power is PowerState.ON and (not other.halted or self._irq_signalled(other.index)):
                return True
        return False

    def other_timer_deadline(self, running: _Vcpu) -> int | None:
        """When the next timer of another powered-on vCPU fires (monotonic ns): the running
        vCPU's slice must end by then so that interrupt is not a whole slice late."""
        deadlines = [at for vcpu in self.vcpus
                     if vcpu is not running and vcpu.power is PowerState.ON
                     and (at := vcpu.timer_deadline_ns()) is not None]
        return min(deadlines, default=None)

    def timer_deadlines_ns(self) -> list[int]:
        """The next timer deadline of every powered-on vCPU that has one."""
        return [at for vcpu in self.vcpus
                if vcpu.power is PowerState.ON and (at := vcpu.timer_deadline_ns()) is not None]

    def any_starting(self) -> bool:
        return any(vcpu.power is PowerState.ON_PENDING for vcpu in self.vcpus)

    def all_off(self) -> bool:
        return all(vcpu.power is PowerState.OFF for vcpu in self.vcpus)

    def any_halted_with_interrupt(self) -> bool:
        return any(vcpu.halted and self._irq_signalled(vcpu.index) for vcpu in self.vcpus)

    def interrupt_changed(self, cpus: Iterable[int]) -> bool:
        """The GIC may now signal an IRQ to `cpus` (any thread): get them to a stop point
        soon and, if one of them is not the vCPU running now, end the running one's slice at
        its next safe point so the scheduler turns to it. True if any was signalled."""
        woke = False
        current = self.current
        for index in cpus:
            if self._irq_signalled(index):
                vcpu = self.vcpus[index]
                vcpu.irq_wanted = True
                vcpu.request_stop()
                if current is not None and vcpu is not current:
                    vcpu.kicked = True
                    current.request_stop()
                woke = True
        return woke
