"""Recovering the exception syndrome and fault address Unicorn does not deliver, and proving
at start-up that the recovery works on the installed Unicorn.

Unicorn 2.1.4 hands synchronous exceptions to UC_HOOK_INTR and drops them; the syndrome and
the faulting virtual address stay in QEMU's `env->exception` {u32 syndrome; u32 fsr;
u64 vaddress; u32 target_el}, which is part of the `context_save()` blob at a build-specific
offset. `probe_exception_details_reader()` runs a two-instruction guest (SVC #imm, then a store
that takes a translation fault), finds the offset from the SVC's known syndrome and checks
the data abort's syndrome and address at the same offset. Anything unexpected raises
`UnicornSelfTestError`: the backend must not run guests it cannot deliver exceptions to.
"""

import ctypes
import struct
from typing import NamedTuple

from unicorn import UC_HOOK_INTR, UC_PROT_ALL, Uc, UcError
from unicorn.unicorn_py3.unicorn import uclib as _uclib

from petard.core.arch import esr, insn, sysregs
from petard.core.backend import BackendUnavailableError

from . import cpu, qemu_exceptions

_EXCEPTION_STRUCT = struct.Struct("<IIQI")     # syndrome, fsr, vaddress, target_el
_uc_context_save = _uclib.uc_context_save


class UnicornSelfTestError(BackendUnavailableError):
    """This Unicorn build does not let petard recover exception syndromes."""


class ExceptionDetails(NamedTuple):
    syndrome: int
    fault_address: int


class ExceptionDetailsReader:
    """Reads the pending exception's syndrome and fault address out of an engine's context."""

    def __init__(self, offset: int):
        self.offset = offset

    def read(self, uc: Uc) -> ExceptionDetails:
        syndrome, _fsr, vaddress, _target_el = _EXCEPTION_STRUCT.unpack_from(
            bytes(uc.context_save()), self.offset)
        return ExceptionDetails(syndrome, vaddress)

    def bind(self, uc: Uc) -> "BoundExceptionDetailsReader":
        return BoundExceptionDetailsReader(self.offset, uc)


class BoundExceptionDetailsReader:
    """`ExceptionDetailsReader` for one engine, saving into one context buffer and reading
    just the 24 bytes needed (1.2 us, against 3.9 us for a fresh context copied out whole)."""

    def __init__(self, offset: int, uc: Uc):
        self._uc = uc
        self._context = uc.context_save()
        self._address = ctypes.cast(self._context.context, ctypes.c_void_p).value + offset

    def read(self) -> ExceptionDetails:
        status = _uc_context_save(self._uc._uch, self._context.context)
        if status:
            raise UcError(status)
        syndrome, _fsr, vaddress, _target_el = _EXCEPTION_STRUCT.unpack(
            ctypes.string_at(self._address, _EXCEPTION_STRUCT.size))
        return ExceptionDetails(syndrome, vaddress)


# The self-test guest: identity-mapped code page, everything from FAULT_ADDRESS up unmapped.
_CODE_BASE = 0x1_0000
_TABLE_BASE = 0x1_4000
_RAM_SIZE = 0x1_0000
_SVC_IMMEDIATE = 0x1234
_FAULT_ADDRESS = 0x8000_0010
_L1_BLOCK_IDENTITY_AF = 0x401        # L1 block descriptor: output 0, AF, attribute index 0
_MAIR_NORMAL_WRITE_BACK = 0xFF
_TCR_T0SZ_39_BIT_VA = 25
_TCR_EPD1 = 1 << 23                  # no TTBR1 walks
_STORE_REGISTER, _ADDRESS_REGISTER = 1, 0

EXPECTED_SVC_SYNDROME = esr.make_esr(esr.EC_SVC64, _SVC_IMMEDIATE)
EXPECTED_ABORT_SYNDROME = esr.make_esr(
    esr.EC_DABT_CUR, esr.ISS_DABT_WNR | esr.FSC_TRANSLATION_L1)


def _run_self_test_guest() -> list[tuple[int, bytes]]:
    uc = cpu.create_engine()
    cpu.configure_firmware_state(uc, 0)
    uc.mem_map(_CODE_BASE, _RAM_SIZE, UC_PROT_ALL)
    program = [insn.encode_svc(_SVC_IMMEDIATE),
               insn.encode_str_x_unsigned_offset(_STORE_REGISTER, _ADDRESS_REGISTER),
               insn.WFI]
    uc.mem_write(_CODE_BASE, struct.pack(f"<{len(program)}I", *program))
    uc.mem_write(_TABLE_BASE, struct.pack("<Q", _L1_BLOCK_IDENTITY_AF))
    cpu.write_sysreg(uc, sysregs.MAIR_EL1, _MAIR_NORMAL_WRITE_BACK)
    cpu.write_sysreg(uc, sysregs.TCR_EL1, _TCR_T0SZ_39_BIT_VA | _TCR_EPD1)
    cpu.write_sysreg(uc, sysregs.TTBR0_EL1, _TABLE_BASE)
    cpu.write_sysreg(uc, sysregs.SCTLR_EL1,
                     cpu.read_sysreg(uc, sysregs.SCTLR_EL1) | sysregs.SCTLR_EL1_M)
    uc.reg_write(cpu.X_REGISTERS[_ADDRESS_REGISTER], _FAULT_ADDRESS)

    seen: list[tuple[int, bytes]] = []

    def on_exception(engine, intno, _user_data):
        seen.append((intno, bytes(engine.context_save())))
        if intno != qemu_exceptions.EXCP_SWI:
            engine.emu_stop()

    uc.hook_add(UC_HOOK_INTR, on_exception)
    uc.emu_start(_CODE_BASE, _CODE_BASE + 4 * len(program))
    return seen


def probe_exception_details_reader() -> ExceptionDetailsReader:
    """Run the self-test guest and return a reader for this Unicorn build, or raise."""
    try:
        seen = _run_self_test_guest()
    except UcError as error:
        raise UnicornSelfTestError(f"Unicorn self-test guest failed to run: {error}") from error
    kinds = [intno for intno, _ in seen]
    if kinds != [qemu_exceptions.EXCP_SWI, qemu_exceptions.EXCP_DATA_ABORT]:
        raise UnicornSelfTestError(
            f"Unicorn self-test: expected an SVC then a data abort, got QEMU exceptions {kinds}; "
            "this Unicorn build is not supported (petard needs unicorn 2.1.4)")
    svc_blob, abort_blob = seen[0][1], seen[1][1]
    svc_word = struct.pack("<I", EXPECTED_SVC_SYNDROME)
    candidates = [offset for offset in range(0, len(svc_blob) - _EXCEPTION_STRUCT.size + 1, 4)
                  if svc_blob[offset:offset + 4] == svc_word]
    for offset in candidates:
        syndrome, _fsr, vaddress, _el = _EXCEPTION_STRUCT.unpack_from(abort_blob, offset)
        if syndrome == EXPECTED_ABORT_SYNDROME and vaddress == _FAULT_ADDRESS:
            return ExceptionDetailsReader(offset)
    raise UnicornSelfTestError(
        "Unicorn self-test: could not locate the exception syndrome/fault address in the "
        f"engine context (SVC syndrome {EXPECTED_SVC_SYNDROME:#x} at offsets {candidates}, "
        f"data abort {EXPECTED_ABORT_SYNDROME:#x} at {_FAULT_ADDRESS:#x} not found); "
        "guest exceptions cannot be delivered with this Unicorn build")
