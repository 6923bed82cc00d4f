"""Run the aarch64 GNU assembler and linker on a source string; return the flat image."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TOOL_PREFIX = "aarch64-linux-gnu-"
DEBIAN_PACKAGE = "binutils-aarch64-linux-gnu"


class AssemblerMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Program:
    base: int
    code: bytes
    symbols: dict[str, int]

    def address(self, symbol: str) -> int:
        return self.symbols[symbol]


def _tool(name: str) -> str:
    path = shutil.which(TOOL_PREFIX + name)
    if path is None:
        raise AssemblerMissingError(
            f"{TOOL_PREFIX}{name} not found: install the Debian package {DEBIAN_PACKAGE}")
    return path


def _run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def assemble(source: str, base: int) -> Program:
    """Assemble and link `source` so that its first section starts at `base`."""
    with tempfile.TemporaryDirectory(prefix="petard-guestasm-") as tmp:
        directory = Path(tmp)
        (directory / "guest.s").write_text(source)
        _run(_tool("as"), "-march=armv8-a", "-o", str(directory / "guest.o"),
             str(directory / "guest.s"))
        _run(_tool("ld"), "-nostdlib", "-static", "--no-warn-rwx-segments",
             f"-Ttext={base:#x}", "-e", "_start",
             "-o", str(directory / "guest.elf"), str(directory / "guest.o"))
        _run(_tool("objcopy"), "-O", "binary", str(directory / "guest.elf"),
             str(directory / "guest.bin"))
        symbols = {}
        for line in _run(_tool("nm"), str(directory / "guest.elf")).splitlines():
            parts = line.split()
            if len(parts) == 3:
                symbols[parts[2]] = int(parts[0], 16)
        return Program(base, (directory / "guest.bin").read_bytes(), symbols)


def assemble_words(source: str) -> list[int]:
    """The 32-bit instruction words of a few instructions (for encoding checks)."""
    program = assemble(".globl _start\n_start:\n" + source + "\n", 0x1000)
    return list(struct.unpack(f"<{len(program.code) // 4}I", program.code))
