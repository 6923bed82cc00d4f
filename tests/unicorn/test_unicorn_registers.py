"""cpu.RegisterBatch: one libunicorn call reads or writes a mixed list of registers
(general, PSTATE, system registers), in order."""

from petard.backends.unicorn import cpu
from petard.core.arch import pstate as ps
from petard.core.arch import sysregs


def test_a_batch_writes_in_order_and_reads_back_general_and_system_registers():
    uc = cpu.create_engine()
    cpu.configure_firmware_state(uc, 0)
    batch = cpu.RegisterBatch([cpu.X_REGISTERS[3], sysregs.TPIDR_EL1, cpu.PSTATE, cpu.SP])
    # SP after PSTATE: the write goes to the stack pointer of the mode just selected.
    batch.write(uc, [0x1234, 0xFFFF_0000_DEAD_BEEF, ps.MODE_EL1h | ps.PSTATE_DAIF_MASK, 0x8000_1000])
    assert batch.read(uc) == [0x1234, 0xFFFF_0000_DEAD_BEEF, ps.MODE_EL1h | ps.PSTATE_DAIF_MASK, 0x8000_1000]
    assert cpu.read_sysreg(uc, sysregs.TPIDR_EL1) == 0xFFFF_0000_DEAD_BEEF
    assert cpu.read_reg(uc, cpu.X_REGISTERS[3]) == 0x1234
    assert uc.context_save().reg_read(cpu.X_REGISTERS[3]) == 0x1234
