"""Reading guest memory by virtual address: a Python walk of the guest's stage-1 tables.

Unicorn's `mem_read` is physical. The VMM needs guest-virtual reads for a few instructions
(decoding a trapped ICC_* access, learning the idle loop, disassembling around a fault).
Supports the 4 KiB granule (what Linux/arm64 Debian uses); MMU off means VA == PA.
"""

from unicorn import Uc

from petard.core.arch import sysregs

from . import cpu

_PAGE_SHIFT = 12
_PAGE_MASK = (1 << _PAGE_SHIFT) - 1
_BITS_PER_LEVEL = 9
_DESCRIPTOR_VALID = 1 << 0
_DESCRIPTOR_TABLE = 1 << 1          # at levels 0-2: table (else block); at level 3: page
_OUTPUT_ADDRESS_MASK = 0x0000_FFFF_FFFF_F000
_TCR_T0SZ_SHIFT, _TCR_T1SZ_SHIFT = 0, 16
_TCR_TXSZ_MASK = 0x3F
_TCR_TG0_SHIFT, _TCR_TG1_SHIFT = 14, 30
_TG0_4K, _TG1_4K = 0b00, 0b10
_TTBR_BADDR_MASK = 0x0000_FFFF_FFFF_FFFE


class TranslationFault(Exception):
    pass


def translate(uc: Uc, read_u64, va: int) -> int:
    """Physical address of `va` for the engine's current EL1 translation regime.

    `read_u64(pa)` reads a descriptor from guest physical memory.
    """
    if not cpu.read_sysreg(uc, sysregs.SCTLR_EL1) & sysregs.SCTLR_EL1_M:
        return va
    tcr = cpu.read_sysreg(uc, sysregs.TCR_EL1)
    upper = bool(va >> 63)
    if upper:
        size_offset = (tcr >> _TCR_T1SZ_SHIFT) & _TCR_TXSZ_MASK
        granule_ok = (tcr >> _TCR_TG1_SHIFT) & 3 == _TG1_4K
        table = cpu.read_sysreg(uc, sysregs.TTBR1_EL1) & _TTBR_BADDR_MASK
    else:
        size_offset = (tcr >> _TCR_T0SZ_SHIFT) & _TCR_TXSZ_MASK
        granule_ok = (tcr >> _TCR_TG0_SHIFT) & 3 == _TG0_4K
        table = cpu.read_sysreg(uc, sysregs.TTBR0_EL1) & _TTBR_BADDR_MASK
    if not granule_ok:
        raise TranslationFault(f"{va:#x}: only the 4 KiB translation granule is supported")
    va_bits = 64 - size_offset
    level = 4 - -(-(va_bits - _PAGE_SHIFT) // _BITS_PER_LEVEL)
    while True:
        shift = _PAGE_SHIFT + _BITS_PER_LEVEL * (3 - level)
        index = (va >> shift) & ((1 << _BITS_PER_LEVEL) - 1)
        descriptor = read_u64(table + 8 * index)
        if not descriptor & _DESCRIPTOR_VALID:
            raise TranslationFault(f"{va:#x}: no mapping at level {level}")
        output = descriptor & _OUTPUT_ADDRESS_MASK
        if level == 3 or not descriptor & _DESCRIPTOR_TABLE:
            block_mask = (1 << shift) - 1
            return (output & ~block_mask) | (va & block_mask)
        table = output
        level += 1


class InstructionReader:
    """Fetches 32-bit guest instructions by VA, caching by VA (kernel text does not move)."""

    def __init__(self, read_u64, read_u32):
        self._read_u64 = read_u64
        self._read_u32 = read_u32
        self._cache: dict[int, int] = {}

    def fetch(self, uc: Uc, va: int, cache: bool = True) -> int:
        cache = cache and bool(va >> 63)        # user VAs differ per process
        if cache and va in self._cache:
            return self._cache[va]
        word = self._read_u32(translate(uc, self._read_u64, va))
        if cache:
            self._cache[va] = word
        return word

    def forget(self) -> None:
        self._cache.clear()
