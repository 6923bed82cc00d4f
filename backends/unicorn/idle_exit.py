"""Learning where the guest's idle loop unmasks interrupts, to stop right there.

arm64 Linux executes WFI with IRQs masked and unmasks them afterwards with `msr daifclr`
(an MSR-immediate, which Unicorn cannot hook). When a halted vCPU must take an interrupt
that is masked, the VMM needs a stop just after that unmask. At the first such WFI this
scans forward from the return address (following one `ret` to the link register) for the
`msr daifclr` that clears I, and puts a one-instruction code hook after it; when the guest
gets there, the current vCPU is told and stops if an interrupt is wanted (IRQs are now
unmasked). One learner serves every vCPU of the shared engine (they run the same kernel idle
loop).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from unicorn import UC_HOOK_CODE, Uc

from petard.core.arch import insn as a64

from .guest_va import TranslationFault

SCAN_LIMIT = 48         # instructions


class IdleExitLearner:
    """`fetch(va)` reads an instruction word by guest virtual address (TranslationFault if
    unmapped); `on_reached()` runs when the guest passes a learned unmask (the vCPU then
    decides whether to stop)."""

    def __init__(self, uc: Uc, fetch: Callable[[int], int], on_reached: Callable[[], None]):
        self.uc = uc
        self.fetch = fetch
        self.on_reached = on_reached
        self.scanned: set[int] = set()       # WFI return addresses already looked at
        self.hooked: set[int] = set()        # addresses with an idle-exit hook

    def learn(self, resume_pc: int, link_register: int, stats: Counter) -> None:
        """A vCPU halted in WFI with IRQs masked, returning to `resume_pc` (x30 holding
        `link_register`)."""
        if resume_pc in self.scanned:
            return
        self.scanned.add(resume_pc)
        unmask = self._find_unmask(resume_pc, link_register)
        if unmask is None:
            stats["idle-exit-not-found"] += 1
            return
        stop_at = unmask + a64.INSN_SIZE
        if stop_at in self.hooked:
            return
        self.uc.hook_add(UC_HOOK_CODE, self._on_after_unmask, None, stop_at, stop_at)
        self.uc.ctl_remove_cache(stop_at, stop_at + a64.INSN_SIZE)
        self.hooked.add(stop_at)
        stats["idle-exit-hooks"] += 1

    def _find_unmask(self, pc: int, link_register: int) -> int | None:
        followed_return = False
        for _ in range(SCAN_LIMIT):
            try:
                word = self.fetch(pc)
            except TranslationFault:
                return None
            if a64.is_msr_daifclr(word) and a64.daif_imm(word) & a64.DAIF_IMM_I:
                return pc
            if a64.is_ret(word):
                if followed_return:
                    return None
                followed_return = True
                pc = link_register
                continue
            pc += a64.INSN_SIZE
        return None

    def _on_after_unmask(self, _uc, _address, _size, _user_data) -> None:
        self.on_reached()
