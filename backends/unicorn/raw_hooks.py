"""Hooks and MMIO ranges registered straight with libunicorn, for the callbacks that run tens
or hundreds of thousands of times per boot (MSR/SYS instructions, EL0 blocks, the console's
MMIO), and for native callbacks (hook_filter.c).

The Python binding wraps every callback in an exception guard, casts the argument pointer
and builds a named tuple per call: 2.4 us per SYS-instruction callback, against 0.5 us for
a bare ctypes callback (measured on this project's CI-class host). The callbacks below get
the same arguments the binding would pass, except that `cp` is the C structure itself
(fields op0, op1, crn, crm, op2, val). They must not raise: ctypes would print the error
and carry on, so every callback catches its own exceptions (see vcpu.py, smp.py).
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable

from unicorn import UC_HOOK_BLOCK, UC_HOOK_INSN, UC_HOOK_INTR, UcError
from unicorn.unicorn_py3 import unicorn as _binding

from .cpu import CpRegister


SysInsnCallback = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32,
                                   ctypes.POINTER(CpRegister), ctypes.c_void_p)
BlockCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                                 ctypes.c_void_p)
InterruptCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
MmioReadCallback = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                                    ctypes.c_uint, ctypes.c_void_p)
MmioWriteCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint,
                                     ctypes.c_uint64, ctypes.c_void_p)


def _register(uc, hook_type: int, function, begin: int, end: int, *extra,
              user_data: ctypes.Structure | None = None) -> int:
    handle = _binding.uc_hook_h()
    user_pointer = None if user_data is None else ctypes.addressof(user_data)
    status = _binding.uclib.uc_hook_add(uc._uch, ctypes.byref(handle), hook_type, function,
                                        user_pointer, ctypes.c_uint64(begin), ctypes.c_uint64(end),
                                        *extra)
    if status != 0:
        raise UcError(status)
    # Keeps the ctypes thunk (and the structure native code points to) alive with the engine.
    uc._callbacks[handle.value] = (function, user_data)
    return handle.value


def sys_insn_thunk(uc, callback: Callable[[Any, int, CpRegister, Any], bool],
                   user_data: Any = None) -> SysInsnCallback:
    """`callback(uc, reg, cp, user_data)` as a C function pointer of the SYS/MSR hook type."""
    def thunk(_handle, reg, cp_pointer, _user_data):
        return 1 if callback(uc, reg, cp_pointer.contents, user_data) else 0
    return SysInsnCallback(thunk)


def block_thunk(uc, callback: Callable[[Any, int, int, Any], None],
                user_data: Any = None) -> BlockCallback:
    """`callback(uc, address, size, user_data)` as a C function pointer of the block hook type."""
    def thunk(_handle, address, size, _user_data):
        callback(uc, address, size, user_data)
    return BlockCallback(thunk)


def add_interrupt_hook(uc, callback: Callable[[Any, int], None]) -> int:
    """UC_HOOK_INTR: callback(uc, intno) for every exception Unicorn raises."""
    return _register(uc, UC_HOOK_INTR, InterruptCallback(lambda _handle, intno, _ud: callback(uc, intno)),
                     1, 0)


def add_native_hook(uc, hook_type: int, function: ctypes._CFuncPtr, user_data: ctypes.Structure,
                    begin: int, end: int, *extra) -> int:
    """Register a function of a loaded C library as the hook, with a pointer to `user_data`."""
    return _register(uc, hook_type, ctypes.cast(function, ctypes.c_void_p), begin, end, *extra,
                     user_data=user_data)


def add_sys_insn_hook(uc, instruction: int, callback: Callable[[Any, int, CpRegister, Any], bool],
                      user_data: Any = None) -> int:
    """UC_HOOK_INSN for UC_ARM64_INS_MSR / MRS / SYS: callback(uc, reg, cp, user_data) -> True
    if the instruction was handled (Unicorn then does not execute it)."""
    return _register(uc, UC_HOOK_INSN, sys_insn_thunk(uc, callback, user_data), 1, 0,
                     ctypes.c_int(instruction))


def add_block_hook(uc, callback: Callable[[Any, int, int, Any], None], begin: int, end: int,
                   user_data: Any = None) -> int:
    """UC_HOOK_BLOCK bounded to [begin, end]: callback(uc, address, size, user_data)."""
    return _register(uc, UC_HOOK_BLOCK, block_thunk(uc, callback, user_data), begin, end)


def mmio_map(uc, base: int, size: int, read: Callable[[int, int], int],
             write: Callable[[int, int, int], None]) -> None:
    """Map [base, base + size) as MMIO: read(offset, size) -> value and write(offset, size,
    value). Neither may raise (see the module docstring)."""
    read_thunk = MmioReadCallback(lambda _handle, offset, width, _user_data: read(offset, width))
    write_thunk = MmioWriteCallback(
        lambda _handle, offset, width, value, _user_data: write(offset, width, value))
    status = _binding.uclib.uc_mmio_map(uc._uch, ctypes.c_uint64(base), size, read_thunk, None,
                                        write_thunk, None)
    if status != 0:
        raise UcError(status)
    uc._mmio_callbacks[(base, base + size)] = (read_thunk, write_thunk)   # as the binding does
