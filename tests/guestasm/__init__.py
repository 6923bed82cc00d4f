"""Assembling small aarch64 guest programs at test time with the real GNU toolchain
(Debian package binutils-aarch64-linux-gnu: aarch64-linux-gnu-as / -ld / -objcopy / -nm).

    from guestasm import assemble
    program = assemble(source, base=0x8000_0000)
    program.code, program.symbols["_start"]
"""

from .assembler import AssemblerMissingError, Program, assemble, assemble_words

__all__ = ["AssemblerMissingError", "Program", "assemble", "assemble_words"]
