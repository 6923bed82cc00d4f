"""Tiny aarch64 guests: an assembled program wrapped as an arm64 Image, loaded by petard's
real loader and run by the real machine builder (machine, plugin and MMIO-benchmark tests).

    image = build_image(tmp_path, BODY, DEVICE=0x4000_3000)
    machine = Machine.build(MachineSpec(kernel_path=image, cmdline="", backend="unicorn", devices=[...]), manager)

The body starts at label ``entry`` with the FDT address in x0 and ends with ``system_off``.
Needs binutils-aarch64-linux-gnu.
"""

from __future__ import annotations

from pathlib import Path

from petard.core import layout
from petard.core.arch import psci

from .assembler import assemble

_IMAGE_HEADER = r"""
.equ PSCI_SYSTEM_OFF, {system_off:#x}
.macro system_off
    ldr x0, =PSCI_SYSTEM_OFF
    hvc #0
99: b 99b
.endm
.text
.globl _start
_start:                          // arm64 Image header (Documentation/arm64/booting.rst)
    b entry                      // code0
    .word 0                      // code1
    .quad 0                      // text_offset
    .quad image_end - _start     // image_size
    .quad 0xa                    // flags: little endian, 4K pages, placed anywhere
    .quad 0, 0, 0
    .ascii "ARM\x64"
    .word 0
"""

_IMAGE_END = r"""
.ltorg
.balign 8
image_end:
"""


def build_image(directory: Path, body: str, **constants: int) -> Path:
    """Assemble `body` (``.equ`` for each of `constants`) into ``directory/Image``."""
    equates = "".join(f".equ {name}, {value:#x}\n" for name, value in constants.items())
    source = _IMAGE_HEADER.format(system_off=psci.PSCI_SYSTEM_OFF) + equates + body + _IMAGE_END
    program = assemble(source, layout.kernel_load_address(0))
    path = Path(directory) / "Image"
    path.write_bytes(program.code)
    return path
