"""petard's test kit: the device bench's contract, and the pytest plugin as a device author
gets it (a fresh pytest run in a subprocess, where only the installed `pytest11` entry
point can provide the fixtures)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from petard.core.device import Device, DeviceOptionsError
from petard.testing import DeviceBench, DeviceFailure


class Ticker(Device):
    """Counts clock ticks every millisecond once started; raises on a read at 0x10."""

    irq_count = 1

    def __init__(self, ctx, *, period_ns: int = 1_000_000) -> None:
        super().__init__(ctx)
        self.period_ns = period_ns
        self.ticks = 0

    def start(self) -> None:
        self.ctx.clock.call_later(self.period_ns, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        self.ctx.irqs[0].pulse()
        self.ctx.clock.call_later(self.period_ns, self._tick)

    def mmio_read(self, offset: int, size: int) -> int:
        if offset == 0x10:
            raise RuntimeError("register 0x10 is haunted")
        return self.ticks

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.ctx.memory.write_u32(value, self.ticks)  # "DMA" the count to guest memory


def test_bench_places_runs_time_and_records_interrupts():
    bench = DeviceBench()
    try:
        ticker = bench.attach(Ticker, from_config=False, options={"period_ns": 250_000})
        base = bench.base_of(ticker)
        assert bench.step(1_000_000) == 4 and bench.readl(base) == 4
        assert bench.irq(ticker).rising_edges == 4 and not bench.irq(ticker).level
        bench.writel(base, bench.memory.base + 0x100)
        assert bench.memory.read_u32(bench.memory.base + 0x100) == 4
        with pytest.raises(DeviceFailure, match=r"device 'Ticker' \(Ticker\) of plugin 'bench' failed: "
                                                r"RuntimeError: register 0x10 is haunted"):
            bench.readl(base + 0x10)
        assert bench.readl(base) == 4  # the bench lets the test go on probing
        with pytest.raises(DeviceOptionsError, match="takes no options, got period_ns"):
            bench.attach(Ticker, options={"period_ns": 1})  # user options need an options_model
    finally:
        bench.close()


AUTHOR_SUITE = """
from petard.core.device import Device

class Echo(Device):
    irq_count = 1
    def mmio_write(self, offset, size, value):
        self.ctx.irqs[0].set_level(bool(value))

def test_on_the_bench(device_bench):
    echo = device_bench.attach(Echo, name="echo0")
    device_bench.writel(device_bench.base_of(echo), 1)
    assert device_bench.irq(echo).level

def test_guest_fixture_is_there(petard_guest):
    assert callable(petard_guest)
"""


def run_pytest(directory, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=directory, capture_output=True, text=True, timeout=300)


def test_the_pytest_plugin_provides_the_fixtures_to_a_fresh_run(tmp_path):
    (tmp_path / "test_author_suite.py").write_text(AUTHOR_SUITE)
    result = run_pytest(tmp_path)
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    result = run_pytest(tmp_path, "-p", "no:petard")  # without the plugin the fixtures do not exist
    assert "fixture 'device_bench' not found" in result.stdout and "2 errors" in result.stdout
