"""Learning where the guest's idle loop unmasks interrupts, to stop right there.

arm64 Linux executes WFI with IRQs masked and unmasks them afterwards with `msr daifclr`
(an MSR-immediate, which Unicorn cannot hook). When a halted vCPU must take an interrupt
that is masked, the VMM needs a stop just after that unmask. At the first such WFI this
scans forward from the return address (following one `ret` to the link register) for the
`msr daifclr` that clears I, and puts a one-instruction code hook after it; the hook stops
emulation when an interrupt is wanted and IRQs are now unmasked. One learner serves every
vCPU of the shared engine (they run the same kernel idle loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import UC_HOOK_CODE

from petard.core.arch import insn as a64
from petard.core.arch import pstate as ps

from . import cpu
from .guest_va import TranslationFault

if TYPE_CHECKING:
    from .engine import SharedEngine
    from .vcpu import UnicornVcpu

SCAN_LIMIT = 48         # instructions


class IdleExitLearner:
    def __init__(self, engine: SharedEngine):
        self.engine = engine
        self.scanned: set[int] = set()       # WFI return addresses already looked at
        self.hooked: set[int] = set()        # addresses with an idle-exit hook

    def learn(self, vcpu: UnicornVcpu, resume_pc: int) -> None:
        """`vcpu` (the current one) halted in WFI with IRQs masked, returning to resume_pc."""
        if resume_pc in self.scanned:
            return
        self.scanned.add(resume_pc)
        unmask = self._find_unmask(vcpu, resume_pc)
        if unmask is None:
            vcpu.stats["idle-exit-not-found"] += 1
            return
        stop_at = unmask + a64.INSN_SIZE
        if stop_at in self.hooked:
            return
        uc = self.engine.uc
        uc.hook_add(UC_HOOK_CODE, self._on_after_unmask, None, stop_at, stop_at)
        uc.ctl_remove_cache(stop_at, stop_at + a64.INSN_SIZE)
        self.hooked.add(stop_at)
        vcpu.stats["idle-exit-hooks"] += 1

    @staticmethod
    def _find_unmask(vcpu: UnicornVcpu, pc: int) -> int | None:
        uc = vcpu.uc
        followed_return = False
        for _ in range(SCAN_LIMIT):
            try:
                word = vcpu.vm.instructions.fetch(uc, pc)
            except TranslationFault:
                return None
            if a64.is_msr_daifclr(word) and a64.daif_imm(word) & a64.DAIF_IMM_I:
                return pc
            if a64.is_ret(word):
                if followed_return:
                    return None
                followed_return = True
                pc = cpu.read_reg(uc, cpu.X_REGISTERS[30])
                continue
            pc += a64.INSN_SIZE
        return None

    def _on_after_unmask(self, uc, _address, _size, _user_data) -> None:
        vcpu = self.engine.current
        if vcpu.irq_wanted and not cpu.read_reg(uc, cpu.PSTATE) & ps.PSTATE_I:
            vcpu.stats["idle-exit-stops"] += 1
            vcpu.stopped_by_vmm = True
            uc.emu_stop()
