"""The PL031 RTC: wall-clock seconds, load, PrimeCell IDs, match interrupt, FDT node."""

from __future__ import annotations

import logging

import pytest

from petard.core.boot.fdt import FdtNode, build_dtb, decode_strings, decode_u64s, parse_dtb
from petard.core.layout import MMIO_LEN, RTC_START
from petard.plugins import rtc as pl031

from .bench import WALL_ORIGIN_NS

GSI = 3
INTID = GSI + 32
SECOND = 1_000_000_000
START_SECONDS = WALL_ORIGIN_NS // SECOND


@pytest.fixture
def dev(bench):
    return bench.place("rtc", RTC_START, gsis=(GSI,))


def rd(bench, reg):
    return bench.bus.read(RTC_START + reg, 4)


def wr(bench, reg, value):
    bench.bus.write(RTC_START + reg, 4, value)


def test_data_register_counts_wall_clock_seconds(bench, dev):
    assert rd(bench, pl031.DR) == START_SECONDS
    bench.clock.advance(2 * SECOND + SECOND // 2)
    assert rd(bench, pl031.DR) == START_SECONDS + 2
    bench.clock.advance(SECOND // 2)
    assert rd(bench, pl031.DR) == START_SECONDS + 3


def test_load_sets_the_count_which_keeps_running(bench, dev):
    wr(bench, pl031.LR, 1000)
    assert rd(bench, pl031.LR) == 1000
    assert rd(bench, pl031.DR) == 1000
    bench.clock.advance(5 * SECOND)
    assert rd(bench, pl031.DR) == 1005


def test_control_register_reads_started(bench, dev):
    assert rd(bench, pl031.CR) == pl031.CR_START
    wr(bench, pl031.CR, 0)
    assert rd(bench, pl031.CR) == pl031.CR_START


def test_primecell_identification_lets_amba_match_the_driver(bench, dev):
    periph = sum(rd(bench, 0xFE0 + 4 * i) << (8 * i) for i in range(4))
    cell = sum(rd(bench, 0xFF0 + 4 * i) << (8 * i) for i in range(4))
    assert (periph, cell) == (0x00041031, 0xB105F00D)


def test_match_interrupt(bench, dev):
    wr(bench, pl031.IMSC, 1)
    wr(bench, pl031.MR, START_SECONDS + 3)
    bench.clock.advance(2 * SECOND)
    assert rd(bench, pl031.RIS) == 0 and not bench.sink.levels.get(INTID)
    bench.clock.advance(SECOND)
    assert (rd(bench, pl031.RIS), rd(bench, pl031.MIS)) == (1, 1)
    assert bench.sink.levels[INTID] is True
    wr(bench, pl031.ICR, 1)
    assert rd(bench, pl031.RIS) == 0 and bench.sink.levels[INTID] is False


def test_masked_match_sets_raw_status_only(bench, dev):
    wr(bench, pl031.MR, START_SECONDS + 1)
    bench.clock.advance(SECOND)
    assert (rd(bench, pl031.RIS), rd(bench, pl031.MIS)) == (1, 0)
    assert not bench.sink.levels.get(INTID)
    wr(bench, pl031.IMSC, 1)
    assert bench.sink.levels[INTID] is True


def test_match_follows_a_reload(bench, dev):
    wr(bench, pl031.MR, 500)
    wr(bench, pl031.LR, 490)
    bench.clock.advance(9 * SECOND)
    assert rd(bench, pl031.RIS) == 0
    bench.clock.advance(SECOND)
    assert rd(bench, pl031.RIS) == 1


@pytest.mark.parametrize("size", [1, 2, 8])
def test_only_word_accesses_are_answered(bench, dev, caplog, size):
    with caplog.at_level(logging.WARNING, logger="petard.plugin.rtc"):
        assert bench.bus.read(RTC_START + pl031.DR, size) == 0
    assert caplog.records and not bench.bus.find(RTC_START).failed


def test_fdt_node_matches_upstream(dev):
    (node,) = dev.fdt_nodes(RTC_START, dev.ctx.irqs)
    blob = build_dtb(FdtNode("", children=[node]))
    parsed = parse_dtb(blob).root.child("rtc@40001000").properties
    assert list(parsed) == ["compatible", "reg", "clocks", "clock-names"]  # no interrupts
    assert decode_strings(parsed["compatible"]) == ["arm,pl031", "arm,primecell"]
    assert decode_u64s(parsed["reg"]) == (RTC_START, MMIO_LEN)


def test_save_and_restore(bench, dev):
    wr(bench, pl031.LR, 7)
    wr(bench, pl031.IMSC, 1)
    wr(bench, pl031.MR, 10)
    state = dev.save_state()
    clone = bench.place("rtc", RTC_START + MMIO_LEN, gsis=(GSI + 1,), name="clone")
    clone.restore_state(state)
    assert clone.save_state() == state
    assert clone.count() == dev.count() == 7
    bench.clock.advance(3 * SECOND)
    assert bench.sink.levels[INTID + 1] is True and bench.sink.levels[INTID] is True
