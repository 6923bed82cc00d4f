"""Tiny aarch64 guest programs for the ioctl-level KVM tests, as assembly source.

The emulated host has no assembler: the nested-test builder (tests/kvm_nested) assembles
each program with binutils-aarch64-linux-gnu on the build machine and ships the flat
images as ``$PETARD_GUEST_PROGRAMS/<name>.bin``. Every program runs with the MMU off at
PROGRAM_BASE (the start of guest RAM), talks to a test device at TEST_DEVICE_BASE and ends
with a PSCI call (hvc #0), the way a kernel would.
"""

PROGRAM_BASE = 0x8000_0000          # layout.DRAM_START
TEST_DEVICE_BASE = 0x4000_3000      # layout.VIRTIO_MMIO_START: an ordinary device window
RAM_MAILBOX = PROGRAM_BASE + 0x1000  # host-written input, guest-written output
PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009

_PROLOGUE = f"""
    .globl _start
_start:
    ldr x1, ={TEST_DEVICE_BASE:#x}
"""
_POWER_OFF = f"""
    ldr x0, ={PSCI_SYSTEM_OFF:#x}
    hvc #0
    b .
"""

PROGRAMS = {
    # One byte write 'A' to the device, then SYSTEM_OFF.
    "write_byte": (PROGRAM_BASE, _PROLOGUE + """
    mov w2, #0x41
    strb w2, [x1]
""" + _POWER_OFF),
    # Read a u32 from device offset 0, write it + 1 to device offset 4 (32-bit), SYSTEM_OFF.
    "read_echo": (PROGRAM_BASE, _PROLOGUE + """
    ldr w3, [x1]
    add w3, w3, #1
    str w3, [x1, #4]
""" + _POWER_OFF),
    # Guest RAM is the host's mapping: load the u64 the host put in the mailbox, write it to
    # the device (64-bit), store its bitwise NOT back to the mailbox + 8, SYSTEM_OFF.
    "ram_roundtrip": (PROGRAM_BASE, _PROLOGUE + f"""
    ldr x4, ={RAM_MAILBOX:#x}
    ldr x3, [x4]
    str x3, [x1, #8]
    mvn x3, x3
    str x3, [x4, #8]
""" + _POWER_OFF),
    "reset": (PROGRAM_BASE, f"""
    .globl _start
_start:
    ldr x0, ={PSCI_SYSTEM_RESET:#x}
    hvc #0
    b .
"""),
    # x0 (the boot register) = how many writes: write 0, 1, 2, ... (u64) to the device,
    # then SYSTEM_OFF. One MMIO exit per iteration: the exit-cost benchmark's guest too.
    "count_writes": (PROGRAM_BASE, """
    .globl _start
_start:
    mov x5, x0
""" + _PROLOGUE.replace(".globl _start\n_start:", "") + """
    mov x4, #0
1:  str x4, [x1]
    add x4, x4, #1
    cmp x4, x5
    b.ne 1b
""" + _POWER_OFF),
}
