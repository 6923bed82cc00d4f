"""Spin-wait hints in the guest kernel, turned into calls to the VMM.

With several vCPUs in one host thread, a vCPU spinning on a lock (qspinlock,
csd_lock_wait, stop_machine, seqcount retries) must give the host thread to the vCPU it
waits for, but such loops contain no instruction Unicorn reports cheaply. They do contain a
hint: arm64 Linux spins with YIELD (cpu_relax) or WFE (smp_cond_load_*, __cmpwait).

Before the guest starts, every YIELD/WFE of the kernel image that sits among code (an
immediate branch, BL or RET within a few instructions of it: spin loops, and cpu_relax
wrappers such as stop_machine_yield that return into one) is replaced in guest RAM by
`HVC #SPIN_HVC_IMMEDIATE`. The neighbourhood test keeps a data word that happens to equal
a hint encoding from being overwritten (in Debian's 6.1 Image all 508 matches are code). Both hints are architectural no-ops for software, which
must tolerate spurious wake-ups, so replacing them by "maybe switch vCPU, then continue" keeps
the guest's semantics. The HVC reaches the VMM through the exception hook that is there
anyway, so the cost is zero until a spin actually happens: no per-instruction hooks (hundreds
of bounded code hooks slow every translation) and no Unicorn exits (Unicorn invalidates the
code at every exit address after each emu_start).

Patching physical memory is independent of where the kernel maps itself (KASLR). Code the
guest loads or patches later (modules, BPF) is patched when the guest publishes it with
IC IVAU (smp.py); see docs/unicorn-smp.md for the limits.
"""

from __future__ import annotations

import struct

from petard.core.arch import insn as a64

SPIN_HVC_IMMEDIATE = 0x5350     # "SP"; Linux's own HVCs (PSCI, SMCCC) use #0
SPIN_CALL = a64.encode_hvc(SPIN_HVC_IMMEDIATE)
SPIN_HINTS = (a64.YIELD, a64.WFE)
NEIGHBOURHOOD_INSNS = 8         # how far from the hint control flow must appear


def find_spin_sites(image: bytes) -> list[int]:
    """Offsets of the YIELD/WFE words in `image` that sit among code, ascending."""
    sites = []
    for hint in SPIN_HINTS:
        pattern = struct.pack("<I", hint)
        found = image.find(pattern)
        while found != -1:
            if found % a64.INSN_SIZE == 0 and _among_code(image, found):
                sites.append(found)
            found = image.find(pattern, found + 1)
    return sorted(sites)


def _among_code(image: bytes, site: int) -> bool:
    span = NEIGHBOURHOOD_INSNS * a64.INSN_SIZE
    start = max(0, site - span)
    end = min(len(image) - len(image) % a64.INSN_SIZE, site + span + a64.INSN_SIZE)
    for offset in range(start, end, a64.INSN_SIZE):
        (word,) = struct.unpack_from("<I", image, offset)
        if a64.branch_offset(word) is not None or a64.is_bl(word) or a64.is_ret(word):
            return True
    return False


def patch_spin_sites(write_u32, base: int, sites: list[int]) -> None:
    """Replace each hint at `base + site` by SPIN_CALL (write_u32(gpa, value))."""
    for site in sites:
        write_u32(base + site, SPIN_CALL)
