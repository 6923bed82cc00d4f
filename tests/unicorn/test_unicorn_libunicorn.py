"""petard's patched libunicorn (backends/unicorn/libunicorn_build.py): the suite runs on it,
and it keeps the stop semantics the backend relies on while dropping the per-access exit
checks. Each behaviour is checked on the bare engine with a small assembled program."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from guestasm import assemble

from petard.backends.unicorn import cpu, libunicorn  # first: selects the library `unicorn` loads
from petard.backends.unicorn import libunicorn_build
from petard.backends.unicorn.libunicorn_build import BuildError, Edit

from unicorn import (UC_ARCH_ARM64, UC_ERR_WRITE_UNMAPPED, UC_HOOK_INSN, UC_HOOK_INTR,  # isort: skip
                     UC_HOOK_MEM_WRITE, UC_MODE_ARM, Uc, UcError)
from unicorn.arm64_const import (UC_ARM64_INS_MSR, UC_ARM64_REG_CPACR_EL1, UC_ARM64_REG_PC,  # isort: skip
                                 UC_ARM64_REG_X0, UC_ARM64_REG_X2, UC_ARM64_REG_X5, UC_ARM64_REG_X7)

CODE_BASE = 0x1_0000
DATA_BASE = 0x4_0000
UNMAPPED = 0x9_0000
FP_ENABLED_AT_EL0_AND_EL1 = 3 << 20


def test_the_suite_runs_on_petards_patched_libunicorn():
    assert libunicorn.patched_library() is not None, (
        "petard's libunicorn is not built (scripts/setup builds it: "
        "python -m petard.backends.unicorn.libunicorn_build)")
    assert libunicorn.running_patched(), f"loaded {libunicorn.loaded_library()}"


def test_petard_unicorn_patched_0_keeps_the_wheels_library():
    env = {**os.environ, libunicorn.DISABLE_VARIABLE: "0"}
    env.pop(libunicorn.BINDING_VARIABLE, None)
    loaded = subprocess.run(
        [sys.executable, "-c", "import petard.backends.unicorn as _; "
                               "from petard.backends.unicorn import libunicorn; print(libunicorn.loaded_library())"],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(loaded).parent.name == "lib" and Path(loaded).parent.parent.name == "unicorn"


def test_a_backend_on_a_host_without_the_build_says_so(tmp_path):
    env = {**os.environ, "PETARD_CACHE": str(tmp_path)}      # an empty cache: no build here
    env.pop(libunicorn.BINDING_VARIABLE, None)
    result = subprocess.run([sys.executable, "-c", "from petard.backends.unicorn import UnicornBackend; UnicornBackend()"],
                            env=env, capture_output=True, text=True, check=True)
    assert "not on petard's build" in result.stderr
    assert "python -m petard.backends.unicorn.libunicorn_build" in result.stderr


def engine(source: str) -> tuple[Uc, dict[str, int]]:
    program = assemble(source, CODE_BASE)
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.mem_map(CODE_BASE, 0x1_0000)
    uc.mem_map(DATA_BASE, 0x1_0000)
    uc.mem_write(CODE_BASE, program.code)
    uc.reg_write(UC_ARM64_REG_CPACR_EL1, FP_ENABLED_AT_EL0_AND_EL1)
    uc.reg_write(UC_ARM64_REG_X7, DATA_BASE)
    return uc, program.symbols


def run_to(uc: Uc, end: int) -> int:
    """Run (resuming after every stop) until `end`; the number of stops."""
    stops = 0
    while uc.reg_read(UC_ARM64_REG_PC) != end:
        uc.emu_start(uc.reg_read(UC_ARM64_REG_PC), end)
        stops += 1
    return stops - 1


# An SVC whose hook rewrites PC (as the backend's ICC-read emulation does), then an MSR whose
# hook asks for a stop (as the backend's slice deadline does), then work that must happen
# exactly once.
STOP_AFTER_PC_WRITE = """
.globl _start
_start:
    mov x5, #0
    svc #0
    msr fpsr, xzr                // does not end the block (as in the kernel's fpsimd_load_state)
    add x5, x5, #1
    ldr x6, [x7]
    add x5, x5, #1
    str x5, [x7]
    ldr x6, [x7]
    add x5, x5, #1
    b 1f
1:  nop
done:
    nop
"""


@pytest.mark.parametrize("write_pc", ["uc_reg_write", "backend_write_reg"])
def test_a_stop_after_a_pc_written_in_an_exception_hook_resumes_where_it_stopped(write_pc):
    """Stock Unicorn kept a PC write's "do not restore PC" mark until the next stop, which then
    resumed at the stale PC of an MSR that does not end its block and ran the additions
    twice. petard's build clears the mark; the backend's own PC writes never set it."""
    if write_pc == "uc_reg_write" and not libunicorn.running_patched():
        pytest.skip("the wheel's libunicorn has this bug; petard's build fixes it")
    uc, symbols = engine(STOP_AFTER_PC_WRITE)
    write = uc.reg_write if write_pc == "uc_reg_write" else (lambda reg, value: cpu.write_reg(uc, reg, value))
    uc.hook_add(UC_HOOK_INTR, lambda uc_, _intno, _ud: write(UC_ARM64_REG_PC, uc_.reg_read(UC_ARM64_REG_PC)))
    asked = []

    def on_msr(uc_, _reg, _cp, _ud):
        if not asked:
            asked.append(uc_.reg_read(UC_ARM64_REG_PC))
            uc_.emu_stop()
        return False

    uc.hook_add(UC_HOOK_INSN, on_msr, None, 1, 0, UC_ARM64_INS_MSR)
    uc.reg_write(UC_ARM64_REG_PC, CODE_BASE)
    assert run_to(uc, symbols["done"]) == 1
    assert uc.reg_read(UC_ARM64_REG_X5) == 3
    assert int.from_bytes(uc.mem_read(DATA_BASE, 8), "little") == 2


def test_a_stop_asked_for_mid_block_ends_at_a_block_boundary_in_a_consistent_state():
    uc, symbols = engine(STOP_AFTER_PC_WRITE.replace("svc #0", "nop"))
    stops = []

    def on_msr(uc_, _reg, _cp, _ud):
        uc_.emu_stop()
        return False

    uc.hook_add(UC_HOOK_INSN, on_msr, None, 1, 0, UC_ARM64_INS_MSR)
    uc.emu_start(CODE_BASE, symbols["done"])
    stops.append(uc.reg_read(UC_ARM64_REG_PC))
    # However far the block ran on, the PC names the next instruction to run for the
    # registers as they are: resuming completes the program exactly once.
    uc.emu_start(stops[0], symbols["done"])
    assert uc.reg_read(UC_ARM64_REG_X5) == 3
    assert int.from_bytes(uc.mem_read(DATA_BASE, 8), "little") == 2


def test_a_store_to_unmapped_memory_stops_at_the_store():
    uc, symbols = engine(f"""
.globl _start
_start:
    mov x2, #0
    ldr x9, ={UNMAPPED:#x}
store:
    str x7, [x9]
    mov x2, #7
done:
    nop
""")
    with pytest.raises(UcError) as error:
        uc.emu_start(CODE_BASE, symbols["done"])
    assert error.value.errno == UC_ERR_WRITE_UNMAPPED
    assert uc.reg_read(UC_ARM64_REG_PC) == symbols["store"]
    assert uc.reg_read(UC_ARM64_REG_X2) == 0


def test_a_memory_hook_still_stops_right_after_its_access():
    uc, symbols = engine("""
.globl _start
_start:
    mov x2, #0
store:
    str x7, [x7]
    mov x2, #7
done:
    nop
""")
    uc.hook_add(UC_HOOK_MEM_WRITE, lambda uc_, *_: uc_.emu_stop())
    uc.emu_start(CODE_BASE, symbols["done"])
    assert uc.reg_read(UC_ARM64_REG_X2) == 0
    assert uc.reg_read(UC_ARM64_REG_PC) == symbols["store"]


def test_a_stop_from_another_thread_ends_a_loop_without_loads_or_stores():
    """The exit check at block entry (now inline) is all that can end this loop."""
    uc, symbols = engine("""
.globl _start
_start:
    add x0, x0, #1
    b _start
done:
    nop
""")
    stopper = threading.Timer(0.05, uc.emu_stop)
    stopper.start()
    uc.emu_start(CODE_BASE, symbols["done"])
    stopper.join()
    assert uc.reg_read(UC_ARM64_REG_X0) > 0
    assert uc.reg_read(UC_ARM64_REG_PC) in (symbols["_start"], symbols["_start"] + 4)


def test_an_edit_that_no_longer_matches_the_sources_stops_the_build(tmp_path):
    (tmp_path / "file.c").write_text("int a;\nint a;\n")
    with pytest.raises(BuildError, match="expected 1 match"):
        Edit("file.c", "int a;", "int c;").apply(tmp_path)
    Edit("file.c", "int a;", "long a;", count=2).apply(tmp_path)
    assert (tmp_path / "file.c").read_text() == "long a;\nlong a;\n"


def test_a_missing_build_tool_is_named_with_its_debian_package(tmp_path, monkeypatch):
    """A host without pkg-config (QEMU's configure needs it) hears so before any download."""
    host_which = libunicorn_build.shutil.which
    monkeypatch.setattr(libunicorn_build.shutil, "which",
                        lambda tool: None if tool == "pkg-config" else host_which(tool))
    with pytest.raises(BuildError, match=r"needs pkg-config \(Debian package pkg-config\)"):
        libunicorn_build.build(tmp_path / "lib")
    assert not (tmp_path / "lib").exists()
