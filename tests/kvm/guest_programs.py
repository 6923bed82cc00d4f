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

# The register programs: known values in the registers a vCPU's neutral state holds, a
# ready flag in RAM, then a WFI loop to be paused in (a loop that stops nowhere could not be
# paused on Unicorn). The same source runs on both
# backends (tests/unicorn/test_unicorn_vcpu_state.py, tests/kvm/test_kvm_vm.py), so one
# list of expectations checks that each reads the same registers with the same meaning.
READY_FLAG = RAM_MAILBOX + 0x100
REGISTER_VALUES = {
    **{f"x{n}": int(f"{n:02d}" * 8, 16) for n in range(19, 29)},
    "sp_el0": PROGRAM_BASE + 0x10_0000, "sp_el1": PROGRAM_BASE + 0x20_0000,
    "elr_el1": PROGRAM_BASE + 0x1234, "spsr_el1": 0x6000_03C5, "fpcr": 0x0040_0000,
    "TPIDR_EL0": 0x0123_4567_89AB_CDEF, "TPIDR_EL1": 0xFEDC_BA98_7654_3210, "VBAR_EL1": PROGRAM_BASE + 0x800,
    "CPACR_EL1": 3 << 20,
}
VECTOR_VALUES = {0: REGISTER_VALUES["x20"] << 64 | REGISTER_VALUES["x19"],
                 31: REGISTER_VALUES["x22"] << 64 | REGISTER_VALUES["x21"]}
WAIT_LOOP = (0xD503_207F, 0x17FF_FFFF)      # `1: wfi` / `b 1b`


def _register_program(el1t: bool) -> str:
    values = REGISTER_VALUES
    loads = "".join(f"    ldr x{n}, ={values[f'x{n}']:#x}\n" for n in range(19, 29))
    banked = f"""
    msr spsel, #0                   // EL1t: SP_EL0 is the live stack pointer now
    ldr x3, ={values['sp_el0']:#x}
    mov sp, x3
""" if el1t else ""
    return f"""
    .globl _start
_start:
    ldr x5, ={values['CPACR_EL1']:#x}
    msr cpacr_el1, x5               // FP/SIMD usable at EL1
    isb
{loads}    ldr x2, ={values['sp_el0']:#x}
    msr sp_el0, x2
    ldr x3, ={values['sp_el1']:#x}
    mov sp, x3
    ldr x4, ={values['TPIDR_EL0']:#x}
    msr tpidr_el0, x4
    ldr x4, ={values['TPIDR_EL1']:#x}
    msr tpidr_el1, x4
    ldr x4, ={values['VBAR_EL1']:#x}
    msr vbar_el1, x4
    ldr x4, ={values['elr_el1']:#x}
    msr elr_el1, x4
    ldr x4, ={values['spsr_el1']:#x}
    msr spsr_el1, x4
    ldr x4, ={values['fpcr']:#x}
    msr fpcr, x4
    mov v0.d[0], x19
    mov v0.d[1], x20
    mov v31.d[0], x21
    mov v31.d[1], x22
{banked}    ldr x4, ={READY_FLAG:#x}
    mov x6, #1
    str x6, [x4]
1:  wfi
    b 1b
"""


def register_state_mismatches(state, el1t: bool, read_u32) -> list[str]:
    """What in a paused register program's `VcpuState` differs from what it set."""
    problems = []
    for name, value in REGISTER_VALUES.items():
        actual = state.system_registers[name] if name.isupper() else (
            state.x[int(name[1:])] if name.startswith("x") else getattr(state, name))
        if name == "CPACR_EL1":
            actual &= value
        if actual != value:
            problems.append(f"{name} = {actual:#x}, the program set {value:#x}")
    for number, value in VECTOR_VALUES.items():
        if state.v[number] != value:
            problems.append(f"v{number} = {state.v[number]:#x}, the program set {value:#x}")
    mode = 0x4 if el1t else 0x5                     # EL1t / EL1h
    if state.pstate & 0xF != mode:
        problems.append(f"PSTATE.M = {state.pstate & 0xF:#x}, expected {mode:#x}")
    live = REGISTER_VALUES["sp_el0" if el1t else "sp_el1"]
    if state.live_sp != live:
        problems.append(f"the live SP is {state.live_sp:#x}, expected {live:#x}")
    if read_u32(state.pc) not in WAIT_LOOP:
        problems.append(f"PC {state.pc:#x} is not in the program's final WFI loop")
    return problems


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
    "registers_el1h": (PROGRAM_BASE, _register_program(el1t=False)),
    "registers_el1t": (PROGRAM_BASE, _register_program(el1t=True)),
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
