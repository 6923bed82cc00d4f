"""Native filters in front of the hottest Unicorn hooks (hook_filter.c), and their Python side.

A boot runs the MSR hook ~100k times (82 % of them `msr daif` in spin_unlock_irqrestore),
the SYS hook of an SMP guest ~200k times (DC CVAU / IC IVAU loops) and the EL0 block hook
once per user-space block. Almost every one of those calls is a no-op for the VMM, yet
costs a ctypes round trip into Python (~0.5 us plus the callback body). The C filters
answer those calls themselves and pass on only the ones the Python callback acts on:

* a class table per hook, indexed by the register's op0:op1:CRn:CRm:op2 encoding, says
  what each register needs (`RegisterClass`); Python fills it from core/arch/sysregs.py,
  so no register number lives in the C file;
* the engine's `HookGate` holds the state those decisions read: the current vCPU's slice
  deadline (every MSR and EL0 block is a safe point to stop at), whether an interrupt waits
  for its IRQs to be unmasked, and the code page last published in this slice. Python owns
  it and the Python callbacks read and write the same fields, so they decide alike whether
  or not the filters are there.

The library is an optional build product (`pip install` compiles it when a C compiler is
present). Without it, or with PETARD_UNICORN_HOOK_FILTER=0 in the environment, the
Python callbacks are registered directly and behave the same, only slower.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.util
import logging
import os
from functools import lru_cache
from typing import Any, Callable, Iterable

from unicorn import UC_HOOK_BLOCK, UC_HOOK_INSN
from unicorn import arm64_const as uc_arm64

from . import raw_hooks

log = logging.getLogger(__name__)

LIBRARY_MODULE = "petard.backends.unicorn._hook_filter"
DISABLE_VARIABLE = "PETARD_UNICORN_HOOK_FILTER"
REGISTER_ENCODINGS = 1 << 16        # op0(2) op1(3) CRn(4) CRm(4) op2(3)
NO_PAGE = (1 << 64) - 1             # never equal to a page-aligned value


class RegisterClass(enum.IntEnum):
    """What a register's accesses need from Python (mirrors enum register_class in C)."""
    IGNORE = 0
    CALL = 1
    CALL_ONCE_PER_PAGE = 2          # unless (value & gate.page_mask) == gate.last_page
    CALL_IF_UNMASKING = 3           # if gate.irq_wanted and the value clears gate.unmask_bit


def encoding(reg: tuple) -> int:
    op0, op1, crn, crm, op2 = reg
    return (op0 & 3) << 14 | (op1 & 7) << 11 | (crn & 15) << 7 | (crm & 15) << 3 | (op2 & 7)


ClassTable = ctypes.c_uint8 * REGISTER_ENCODINGS


def class_table(entries: Iterable[tuple[tuple, RegisterClass]]) -> ClassTable:
    """A table with every register IGNORE except the (register, class) pairs given."""
    table = ClassTable()
    for reg, register_class in entries:
        table[encoding(reg)] = register_class
    return table


class HookGate(ctypes.Structure):
    """struct hook_gate: one per engine, passed to the filters as their user data."""

    _fields_ = [
        ("stop_deadline_ns", ctypes.c_int64),
        ("irq_wanted", ctypes.c_uint32),
        ("last_page", ctypes.c_uint64),
        ("page_mask", ctypes.c_uint64),
        ("unmask_bit", ctypes.c_uint64),
        ("msr_classes", ctypes.POINTER(ctypes.c_uint8)),
        ("sys_classes", ctypes.POINTER(ctypes.c_uint8)),
        ("msr_slow", raw_hooks.SysInsnCallback),
        ("sys_slow", raw_hooks.SysInsnCallback),
        ("block_slow", raw_hooks.BlockCallback),
        ("answered_msr", ctypes.c_uint64),
        ("answered_sys", ctypes.c_uint64),
        ("answered_block", ctypes.c_uint64),
    ]

    def __init__(self, page_mask: int, unmask_bit: int):
        super().__init__(page_mask=page_mask, unmask_bit=unmask_bit, last_page=NO_PAGE)
        self._keep_alive: list = []     # class tables and slow-path thunks the C side points to

    def answered(self) -> dict[str, int]:
        """Calls the filters answered without Python, by hook."""
        return {"msr": self.answered_msr, "sys": self.answered_sys, "block": self.answered_block}


def library_path() -> str | None:
    """Where the compiled filters are, if they were built."""
    spec = importlib.util.find_spec(LIBRARY_MODULE)
    return spec.origin if spec is not None else None


@lru_cache(maxsize=1)
def native_library() -> ctypes.CDLL | None:
    """The compiled filters, or None (not built here, or switched off)."""
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return None
    path = library_path()
    if path is None:
        log.warning("Unicorn hook filters not built (%s): hooks run in Python, slower", LIBRARY_MODULE)
        return None
    return ctypes.CDLL(path)


def add_msr_hook(uc, gate: HookGate, classes: ClassTable, callback: Callable[..., bool],
                 user_data: Any = None) -> int:
    """MSR hook: `callback(uc, reg, cp, user_data)` for the registers of `classes` that need
    it, and for any MSR once monotonic time reaches gate.stop_deadline_ns."""
    return _add_sys_insn_hook(uc, gate, uc_arm64.UC_ARM64_INS_MSR, "msr", classes, callback,
                              user_data)


def add_sys_hook(uc, gate: HookGate, classes: ClassTable, callback: Callable[..., bool],
                 user_data: Any = None) -> int:
    """SYS-instruction hook: `callback(uc, reg, cp, user_data)` for the operations of `classes`
    that need it."""
    return _add_sys_insn_hook(uc, gate, uc_arm64.UC_ARM64_INS_SYS, "sys", classes, callback,
                              user_data)


def add_block_hook(uc, gate: HookGate, callback: Callable[..., None], begin: int, end: int) -> int:
    """Block hook over [begin, end]: `callback(uc, address, size, None)` once monotonic time
    reaches gate.stop_deadline_ns."""
    library = native_library()
    if library is None:
        return raw_hooks.add_block_hook(uc, callback, begin, end)
    gate.block_slow = raw_hooks.block_thunk(uc, callback)
    gate._keep_alive.append(gate.block_slow)
    return raw_hooks.add_native_hook(uc, UC_HOOK_BLOCK, library.petard_block_filter, gate, begin, end)


def _add_sys_insn_hook(uc, gate: HookGate, instruction: int, kind: str, classes: ClassTable,
                       callback, user_data) -> int:
    library = native_library()
    if library is None:
        return raw_hooks.add_sys_insn_hook(uc, instruction, callback, user_data)
    thunk = raw_hooks.sys_insn_thunk(uc, callback, user_data)
    setattr(gate, f"{kind}_classes", ctypes.cast(classes, ctypes.POINTER(ctypes.c_uint8)))
    setattr(gate, f"{kind}_slow", thunk)
    gate._keep_alive += [classes, thunk]
    return raw_hooks.add_native_hook(uc, UC_HOOK_INSN, getattr(library, f"petard_{kind}_filter"),
                                     gate, 1, 0, ctypes.c_int(instruction))
