"""Turning a guest or emulator failure into a `VmExit` with registers and the code around PC.

The instructions are read by guest virtual address (page-table walk) and disassembled with
capstone, so the report shows what the vCPU was executing. The registers are the neutral
`VcpuState`'s, named as on every backend.
"""

from __future__ import annotations

from collections.abc import Callable

from petard.core.backend import ExitReason, VmExit
from petard.core.vcpu_state import VcpuState

INSTRUCTIONS_BEFORE = 4
INSTRUCTIONS_AFTER = 4


def disassemble_around(fetch: Callable[[int], int], pc: int) -> list[str]:
    """`fetch(va)` reads one instruction word by guest virtual address."""
    import capstone     # only ever needed here, on the way out (its import costs ~20 ms)

    disassembler = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    lines = []
    for address in range(pc - 4 * INSTRUCTIONS_BEFORE, pc + 4 * (INSTRUCTIONS_AFTER + 1), 4):
        marker = "=>" if address == pc else "  "
        try:
            word = fetch(address)
        except Exception as error:     # unmapped, outside RAM...
            lines.append(f"{marker} {address:#018x}: <unreadable: {error}>")
            continue
        decoded = list(disassembler.disasm(word.to_bytes(4, "little"), address))
        text = f"{decoded[0].mnemonic} {decoded[0].op_str}".strip() if decoded else ".inst"
        lines.append(f"{marker} {address:#018x}: {word:08x}  {text}")
    return lines


def fatal_exit(message: str, vcpu_index: int, state: VcpuState, fetch: Callable[[int], int]) -> VmExit:
    return VmExit(ExitReason.FATAL_ERROR, message, vcpu_index, state.report_registers(),
                  disassemble_around(fetch, state.pc))
