"""Turning a guest or emulator failure into a `VmExit` with registers and the code around PC.

The instructions are read by guest virtual address (page-table walk) and disassembled with
capstone, so the report shows what the vCPU was executing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from petard.core.arch import sysregs
from petard.core.backend import ExitReason, VmExit

from . import cpu
from .guest_va import TranslationFault

if TYPE_CHECKING:
    from .vcpu import UnicornVcpu

INSTRUCTIONS_BEFORE = 4
INSTRUCTIONS_AFTER = 4
_SYSTEM_REGISTERS = {
    "elr_el1": sysregs.ELR_EL1, "esr_el1": sysregs.ESR_EL1, "far_el1": sysregs.FAR_EL1,
    "spsr_el1": sysregs.SPSR_EL1, "vbar_el1": sysregs.VBAR_EL1, "sctlr_el1": sysregs.SCTLR_EL1,
}


def disassemble_around(vcpu: UnicornVcpu, pc: int) -> list[str]:
    import capstone     # only ever needed here, on the way out (its import costs ~20 ms)

    disassembler = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    lines = []
    for address in range(pc - 4 * INSTRUCTIONS_BEFORE, pc + 4 * (INSTRUCTIONS_AFTER + 1), 4):
        marker = "=>" if address == pc else "  "
        try:
            word = vcpu.vm.instructions.fetch(vcpu.uc, address, cache=False)
        except (TranslationFault, Exception) as error:     # unmapped, outside RAM...
            lines.append(f"{marker} {address:#018x}: <unreadable: {error}>")
            continue
        decoded = list(disassembler.disasm(word.to_bytes(4, "little"), address))
        text = f"{decoded[0].mnemonic} {decoded[0].op_str}".strip() if decoded else ".inst"
        lines.append(f"{marker} {address:#018x}: {word:08x}  {text}")
    return lines


def fatal_exit(vcpu: UnicornVcpu, message: str) -> VmExit:
    uc = vcpu.uc
    registers = cpu.general_registers(uc)
    for name, reg in _SYSTEM_REGISTERS.items():
        try:
            registers[name] = cpu.read_sysreg(uc, reg)
        except Exception:
            pass
    return VmExit(ExitReason.FATAL_ERROR, message, vcpu.index, registers,
                  disassemble_around(vcpu, registers["pc"]))
