"""Instruction decoders in core.arch.insn against the real assembler's encodings."""

from guestasm import assemble_words

from petard.core.arch import insn, sysregs


def test_decode_msr_and_mrs_of_system_registers():
    msr, mrs, msr_daif = assemble_words(
        "msr ICC_PMR_EL1, x5\nmrs x3, ICC_IAR1_EL1\nmsr daif, x2")
    assert insn.decode_sysreg_access(msr) == (sysregs.ICC_PMR_EL1, False, 5)
    assert insn.decode_sysreg_access(mrs) == (sysregs.ICC_IAR1_EL1, True, 3)
    assert insn.decode_sysreg_access(msr_daif) == (sysregs.DAIF, False, 2)


def test_sysreg_encodings_match_assembler_names():
    for name in ["SCTLR_EL1", "VBAR_EL1", "TPIDR_EL1", "CNTV_CTL_EL0", "CNTV_CVAL_EL0",
                 "CNTP_TVAL_EL0", "ICC_SGI1R_EL1", "ICC_EOIR1_EL1", "ICC_SRE_EL1",
                 "ICC_IGRPEN1_EL1", "ICC_CTLR_EL1", "ICC_DIR_EL1", "SPSR_EL1", "ELR_EL1",
                 "ESR_EL1", "FAR_EL1", "HCR_EL2", "SCR_EL3", "VMPIDR_EL2", "CNTHCTL_EL2"]:
        (word,) = assemble_words(f"msr {name}, x0")
        assert insn.decode_sysreg_access(word).reg == getattr(sysregs, name), name


def test_icc_register_classification():
    assert sysregs.is_icc_el1_register(sysregs.ICC_PMR_EL1)
    assert sysregs.is_icc_el1_register(sysregs.ICC_IAR1_EL1)
    assert not sysregs.is_icc_el1_register(sysregs.VBAR_EL1)      # also CRn 12
    assert not sysregs.is_icc_el1_register(sysregs.DAIF)


def test_other_recognised_instructions():
    daifclr_i, daifclr_if, daifset, ret, ret_x1, nop = assemble_words(
        "msr daifclr, #2\nmsr daifclr, #3\nmsr daifset, #2\nret\nret x1\nnop")
    assert insn.is_msr_daifclr(daifclr_i) and insn.daif_imm(daifclr_i) & insn.DAIF_IMM_I
    assert insn.is_msr_daifclr(daifclr_if) and insn.daif_imm(daifclr_if) == 3
    assert not insn.is_msr_daifclr(daifset)
    assert insn.is_ret(ret) and insn.is_ret(ret_x1) and not insn.is_ret(nop)
    assert assemble_words("wfi\nwfe\nyield\nnop") == [insn.WFI, insn.WFE, insn.YIELD, insn.NOP]
