"""The emulated GICs with many CPUs, driven directly: SGI routing by affinity (GICv3
ICC_SGI1R_EL1 with the range selector for Aff0 > 15) and target lists (GICv2 GICD_SGIR),
the banked SGI state per CPU, and the GICv2 8-CPU limit."""

import pytest

from petard.backends.unicorn.gicv2 import GicV2
from petard.backends.unicorn.gicv3 import GicV3
from petard.core.arch import gic, sysregs
from petard.core.machine import gic_description, vcpu_mpidrs

SGI = 5


def enabled(model, cpus: int):
    state = model.model
    state.distributor_enabled = True
    for cpu in range(cpus):
        state.cpus[cpu].enabled = True
        state.cpus[cpu].priority_mask = 0xF0
        state.set_enabled(cpu, SGI, True)
    return model


def signalled(model, cpus: int) -> list[int]:
    return [cpu for cpu in range(cpus) if model.model.irq_signalled(cpu)]


def sgi1r(intid: int, aff0_targets: list[int], aff1: int = 0) -> int:
    ranges = {aff0 // gic.ICC_SGI1R_TARGETS_PER_RANGE for aff0 in aff0_targets}
    assert len(ranges) == 1
    target_list = sum(1 << (aff0 % gic.ICC_SGI1R_TARGETS_PER_RANGE) for aff0 in aff0_targets)
    return (target_list | aff1 << gic.ICC_SGI1R_AFF1_SHIFT | intid << gic.ICC_SGI1R_INTID_SHIFT
            | ranges.pop() << gic.ICC_SGI1R_RS_SHIFT)


def test_gicv3_sgi_reaches_exactly_the_targeted_cpus_among_32():
    cpus = 32
    model = enabled(GicV3(gic_description(3, cpus), vcpu_mpidrs(cpus)), cpus)
    assert model.sysreg_read(0, sysregs.ICC_CTLR_EL1) & gic.ICC_CTLR_RSS
    assert model.distributor_read(0, gic.GICD_TYPER, 4) & gic.GICD_TYPER_RSS
    model.sysreg_write(3, sysregs.ICC_SGI1R_EL1, sgi1r(SGI, [17, 30]))
    assert signalled(model, cpus) == [17, 30]
    assert model.sysreg_read(17, sysregs.ICC_IAR1_EL1) == SGI
    assert signalled(model, cpus) == [30]
    model.sysreg_write(0, sysregs.ICC_SGI1R_EL1, sgi1r(SGI, [1]))
    assert signalled(model, cpus) == [1, 30]


def test_gicv3_sgi_to_all_but_self():
    cpus = 4
    model = enabled(GicV3(gic_description(3, cpus), vcpu_mpidrs(cpus)), cpus)
    model.sysreg_write(2, sysregs.ICC_SGI1R_EL1, SGI << gic.ICC_SGI1R_INTID_SHIFT | gic.ICC_SGI1R_IRM)
    assert signalled(model, cpus) == [0, 1, 3]


def test_gicv2_sgi_target_list_and_source_cpu_in_iar():
    cpus = 8
    model = enabled(GicV2(gic_description(2, cpus), cpus), cpus)
    model.distributor_write(6, gic.GICD_SGIR, 4, SGI | 0b1000_0010 << gic.SGIR_TARGET_LIST_SHIFT)
    assert signalled(model, cpus) == [1, 7]
    assert model.cpu_interface_read(7, gic.GICC_IAR, 4) == SGI | 6 << gic.GICC_IAR_CPUID_SHIFT
    model.distributor_write(2, gic.GICD_SGIR, 4, SGI | gic.SGIR_FILTER_ALL_BUT_SELF << gic.SGIR_TARGET_FILTER_SHIFT)
    assert signalled(model, cpus) == [0, 1, 3, 4, 5, 6]     # 7 still has SGI 5 active


def test_gicv2_refuses_more_than_eight_cpus():
    with pytest.raises(ValueError, match="GICv2 supports at most 8 vCPUs"):
        GicV2(gic_description(2, 9), 9)
