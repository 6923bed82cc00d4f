"""The GIC state model shared by both emulated GICs, driven directly (no guest)."""

from petard.backends.unicorn.gic_model import GicModel
from petard.core.arch import gic

SPI = 40


def make_state(cpus: int = 1) -> GicModel:
    state = GicModel(cpus, 128)
    state.distributor_enabled = True
    for interface in state.cpus:
        interface.enabled = True
        interface.priority_mask = 0xF0
    return state


def test_level_interrupt_is_redelivered_after_eoi_while_the_line_stays_high():
    state = make_state()
    state.set_enabled(0, SPI, True)
    state.set_level(SPI, True)
    assert state.acknowledge(0) == (SPI, 0)
    assert not state.irq_signalled(0)          # active: not signalled again
    state.end_of_interrupt(0, SPI)
    assert state.irq_signalled(0)              # still high
    state.set_level(SPI, False)
    assert not state.irq_signalled(0)


def test_edge_interrupt_is_latched_by_a_pulse():
    state = make_state()
    state.irq(0, SPI).edge = True
    state.set_enabled(0, SPI, True)
    state.set_level(SPI, True)
    state.set_level(SPI, False)
    assert state.acknowledge(0) == (SPI, 0)
    state.end_of_interrupt(0, SPI)
    assert state.acknowledge(0) == (gic.SPURIOUS_INTID, 0)


def test_split_eoi_mode_needs_deactivation():
    state = make_state()
    state.cpus[0].eoi_mode_split = True
    state.set_enabled(0, SPI, True)
    state.set_level(SPI, True)
    state.acknowledge(0)
    state.end_of_interrupt(0, SPI)             # priority drop only
    assert state.cpus[0].running_priority == gic.IDLE_PRIORITY
    assert state.irq(0, SPI).active
    state.deactivate(0, SPI)
    assert not state.irq(0, SPI).active


def test_higher_priority_preempts_and_lower_waits_for_running_priority():
    state = make_state()
    low, high = 50, 51
    state.irq(0, low).priority = 0xA0
    state.irq(0, high).priority = 0x80
    for intid in (low, high):
        state.set_enabled(0, intid, True)
    state.set_level(low, True)
    assert state.acknowledge(0)[0] == low
    state.set_level(high, True)
    assert state.irq_signalled(0)              # 0x80 beats running priority 0xA0
    assert state.acknowledge(0)[0] == high
    assert state.cpus[0].running_priority == 0x80


def test_sgis_from_two_sources_are_acknowledged_separately():
    state = make_state(cpus=3)
    state.set_enabled(0, 1, True)
    state.send_sgi(0, 1, source_cpu=2)
    state.send_sgi(0, 1, source_cpu=1)
    assert state.acknowledge(0) == (1, 1)
    state.end_of_interrupt(0, 1)
    assert state.acknowledge(0) == (1, 2)
    state.end_of_interrupt(0, 1)
    assert not state.irq_signalled(0)


def test_spi_goes_only_to_its_target_cpu_and_changes_are_announced():
    state = make_state(cpus=2)
    announced = []
    state.on_change = lambda cpus: announced.append(list(cpus))
    state.set_spi_targets(SPI, 0b10)
    state.set_enabled(0, SPI, True)
    state.set_level(SPI, True)
    assert announced[-1] == [1]
    assert not state.irq_signalled(0) and state.irq_signalled(1)
