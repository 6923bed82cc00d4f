"""Finding the kernel's spin-wait hints (YIELD/WFE among code) in a real assembled image,
leaving look-alike data words alone, and patching the hints into the VMM's spin call, which
the real assembler decodes as `hvc`."""

import struct

from guestasm import assemble, assemble_words

from petard.backends.unicorn.spin_sites import (SPIN_CALL, SPIN_HVC_IMMEDIATE,
                                                find_spin_sites, patch_spin_sites)
from petard.core.arch import insn as a64

IMAGE = r"""
.text
.globl _start
_start:
spin_yield:                     // while (!*x0) cpu_relax();
    ldr w1, [x0]
    cbnz w1, 1f
    yield
    b spin_yield
1:  ret
relax_wrapper:                  // stop_machine_yield(): a cpu_relax() that returns into a loop
    yield
    ret
wait_event:                     // smp_cond_load_acquire -> __cmpwait
    sevl
    wfe
2:  ldaxr w1, [x0]
    cbnz w1, 3f
    wfe
    b 2b
3:  ret
.balign 256
data:                           // a data word that looks like YIELD, among other data
    .fill 16, 4, 0x12345678
    .word 0xd503203f
    .fill 16, 4, 0x12345678
"""


def test_hints_among_code_are_found_and_data_is_not():
    program = assemble(IMAGE, 0x1000)
    sites = find_spin_sites(program.code)
    expected = [program.address(label) - 0x1000 + offset for label, offset in
                [("spin_yield", 8), ("relax_wrapper", 0), ("wait_event", 4), ("wait_event", 16)]]
    assert sites == sorted(expected)
    data_word = program.address("data") - 0x1000 + 16 * 4
    assert struct.unpack_from("<I", program.code, data_word)[0] == a64.YIELD
    assert data_word not in sites


def test_patched_hints_become_the_spin_call():
    program = assemble(IMAGE, 0x1000)
    image = bytearray(program.code)

    def write_u32(address, value):
        struct.pack_into("<I", image, address - 0x1000, value)

    sites = find_spin_sites(bytes(image))
    patch_spin_sites(write_u32, 0x1000, sites)
    assert all(struct.unpack_from("<I", image, site)[0] == SPIN_CALL for site in sites)
    assert assemble_words(f"hvc #{SPIN_HVC_IMMEDIATE:#x}") == [SPIN_CALL]
    assert find_spin_sites(bytes(image)) == []


def test_branch_offsets_match_the_assembler():
    words = assemble_words("1: b 1b\n b.ne 1b\n cbz x3, 1b\n tbnz w4, #3, 1b\n b 2f\n bl 2f\n2: nop")
    assert [a64.branch_offset(word) for word in words] == [0, -4, -8, -12, 8, None, None]
    assert a64.is_bl(words[5]) and not a64.is_bl(words[4])
