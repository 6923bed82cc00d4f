"""The boot timer: Firecracker's Guest-boot-time line when the guest writes 123."""

from __future__ import annotations

import logging
import re

import pytest

from petard.core.layout import BOOT_TIMER_START
from petard.plugins.boot_timer import format_boot_time

# The regular expression Firecracker's own boot-time test parses the log with.
FIRECRACKER_BOOT_TIME_REGEX = r"Guest-boot-time\s+\=\s+(\d+)\s+us"
LINE = re.compile(r"Guest-boot-time = +(\d+) us (\d+) ms, +(\d+) CPU us (\d+) CPU ms")


@pytest.fixture
def dev(bench):
    return bench.place("boot_timer", BOOT_TIMER_START)


def test_magic_write_logs_boot_time(bench, dev, caplog):
    bench.clock.advance(1_234_567_891)
    with caplog.at_level(logging.INFO, logger="petard.plugin.boot_timer"):
        bench.bus.write(BOOT_TIMER_START, 1, 123)
    (record,) = caplog.records
    message = record.getMessage()
    assert re.search(FIRECRACKER_BOOT_TIME_REGEX, message).group(1) == "1234567"
    us, ms, cpu_us, cpu_ms = map(int, LINE.fullmatch(message).groups())
    assert (us, ms) == (1_234_567, 1_234)
    assert cpu_ms == cpu_us // 1000 and cpu_us >= 0
    assert (dev.boot_time_us, dev.boot_time_cpu_us) == (us, cpu_us)


@pytest.mark.parametrize("offset, size, value", [(0, 1, 122), (1, 1, 123), (0, 4, 123)])
def test_other_writes_are_ignored(bench, dev, caplog, offset, size, value):
    with caplog.at_level(logging.INFO, logger="petard.plugin.boot_timer"):
        bench.bus.write(BOOT_TIMER_START + offset, size, value)
    assert caplog.records == [] and dev.boot_time_us is None


def test_reads_are_zero_and_there_is_no_fdt_node(bench, dev):
    assert bench.bus.read(BOOT_TIMER_START, 4) == 0
    assert dev.fdt_nodes(BOOT_TIMER_START, ()) == []


def test_start_point_is_configurable(bench):
    dev = bench.place("boot_timer", BOOT_TIMER_START, start_ns=-500_000)
    bench.clock.advance(1_000_000)
    bench.bus.write(BOOT_TIMER_START, 1, 123)
    assert dev.boot_time_us == 1_500


def test_format_pads_like_upstream():
    assert format_boot_time(42, 7) == "Guest-boot-time =     42 us 0 ms,      7 CPU us 0 CPU ms"
    assert format_boot_time(1_234_567, 89_012) == "Guest-boot-time = 1234567 us 1234 ms,  89012 CPU us 89 CPU ms"
