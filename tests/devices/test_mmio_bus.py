"""MmioBus: dispatch by address, overlap detection, unmapped accesses, and containment of
device failures (a device that raises is disabled, named in the log, and the VM goes on)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petard.core.clock import VirtualClock
from petard.core.device import Device, DeviceType
from petard.core.layout import DRAM_START, MMIO_LEN, RTC_START, SERIAL_START
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus, MmioOverlapError


class RegisterFile(Device):
    """A device whose window is plain storage, 8 bytes per register slot."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.values: dict[int, int] = {}
        self.accesses: list[tuple] = []

    def mmio_read(self, offset: int, size: int) -> int:
        self.accesses.append(("read", offset, size))
        return self.values.get(offset, 0)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.accesses.append(("write", offset, size, value))
        self.values[offset] = value


class Faulty(RegisterFile):
    """Raises on any access to offset 0x40 (a bug in a third-party model)."""

    def mmio_read(self, offset: int, size: int) -> int:
        if offset == 0x40:
            raise ZeroDivisionError("model bug on read")
        return super().mmio_read(offset, size)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x40:
            raise KeyError("model bug on write")
        super().mmio_write(offset, size, value)


@pytest.fixture
def make():
    memory = GuestMemory(DRAM_START, 1 << 16)
    clock = VirtualClock.manual()

    def make(cls, name, plugin="acme-devices"):
        return DeviceType(name, cls, plugin).create(instance_name=name, irqs=(), memory=memory, clock=clock)

    yield make
    memory.close()


def test_dispatch_uses_region_relative_offsets(make):
    bus = MmioBus()
    first, second = make(RegisterFile, "first"), make(RegisterFile, "second")
    bus.add(SERIAL_START, MMIO_LEN, second)
    bus.add(RTC_START, MMIO_LEN, first)
    bus.write(RTC_START + 0x10, 4, 0xAB)
    bus.write(SERIAL_START + 0xFFF, 1, 0x7)
    assert bus.read(RTC_START + 0x10, 4) == 0xAB
    assert bus.read(SERIAL_START + 0xFFF, 1) == 0x7
    assert first.accesses == [("write", 0x10, 4, 0xAB), ("read", 0x10, 4)]
    assert second.accesses == [("write", 0xFFF, 1, 0x7), ("read", 0xFFF, 1)]
    assert [(r.base, r.size, r.device) for r in bus.regions()] == [
        (RTC_START, MMIO_LEN, first), (SERIAL_START, MMIO_LEN, second)
    ]


def test_region_read_write_is_the_direct_path(make):
    """Unicorn maps each region and calls region.read/write with the region offset."""
    bus = MmioBus()
    device = make(RegisterFile, "direct")
    region = bus.add(RTC_START, MMIO_LEN, device)
    region.write(8, 8, 0x1122334455667788)
    assert region.read(8, 8) == 0x1122334455667788
    assert bus.find(RTC_START + 8) is region
    assert bus.find(RTC_START + MMIO_LEN) is None


@pytest.mark.parametrize("base, size", [
    (RTC_START, MMIO_LEN),  # same
    (RTC_START + 0xFFF, 1),  # last byte
    (RTC_START - 0x10, 0x11),  # reaches the first byte
    (RTC_START - MMIO_LEN, 3 * MMIO_LEN),  # covers it
])
def test_overlap_names_both_devices(make, base, size):
    bus = MmioBus()
    bus.add(RTC_START, MMIO_LEN, make(RegisterFile, "incumbent", plugin="old-plugin"))
    with pytest.raises(MmioOverlapError) as error:
        bus.add(base, size, make(RegisterFile, "newcomer", plugin="new-plugin"))
    message = str(error.value)
    assert "incumbent" in message and "old-plugin" in message
    assert "newcomer" in message and "new-plugin" in message
    assert len(bus.regions()) == 1


def test_adjacent_regions_do_not_overlap(make):
    bus = MmioBus()
    bus.add(RTC_START, MMIO_LEN, make(RegisterFile, "a"))
    bus.add(RTC_START + MMIO_LEN, MMIO_LEN, make(RegisterFile, "b"))
    bus.add(RTC_START - MMIO_LEN, MMIO_LEN, make(RegisterFile, "c"))
    assert [r.name for r in bus.regions()] == ["c", "a", "b"]


def test_unmapped_access_reads_zero_and_logs_once(make, caplog):
    bus = MmioBus()
    bus.add(RTC_START, MMIO_LEN, make(RegisterFile, "a"))
    with caplog.at_level(logging.WARNING, logger="petard.core.mmio"):
        assert bus.read(0x1000, 4) == 0
        assert bus.read(0x1000, 4) == 0
        bus.write(RTC_START + MMIO_LEN, 4, 1)
    assert bus.unmapped_accesses == 3
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "0x1000" in messages[0] and hex(RTC_START + MMIO_LEN) in messages[1]


@pytest.mark.parametrize("access", ["read", "write"])
def test_failing_device_is_contained(make, caplog, access):
    bus = MmioBus()
    faulty = make(Faulty, "flaky-sensor", plugin="acme-sensors")
    healthy = make(RegisterFile, "healthy")
    bus.add(RTC_START, MMIO_LEN, faulty, "flaky-sensor")  # as the machine builder names it
    bus.add(SERIAL_START, MMIO_LEN, healthy)
    bus.write(RTC_START, 4, 5)
    with caplog.at_level(logging.ERROR, logger="petard.core.mmio"):
        if access == "read":
            assert bus.read(RTC_START + 0x40, 4) == 0
        else:
            bus.write(RTC_START + 0x40, 4, 9)
        # Disabled from now on: reads are 0 and nothing reaches the device.
        before = len(faulty.accesses)
        assert bus.read(RTC_START, 4) == 0
        bus.write(RTC_START, 4, 6)
        assert len(faulty.accesses) == before
    (record,) = caplog.records
    assert "acme-sensors" in record.getMessage() and "flaky-sensor" in record.getMessage()
    assert record.exc_info is not None
    region = bus.find(RTC_START)
    assert region.failed and isinstance(region.failure, (ZeroDivisionError, KeyError))
    # The rest of the machine keeps working.
    bus.write(SERIAL_START, 1, 0x41)
    assert bus.read(SERIAL_START, 1) == 0x41


def test_rejects_empty_region(make):
    with pytest.raises(ValueError):
        MmioBus().add(RTC_START, 0, make(RegisterFile, "a"))


# `make` is a stateless factory (memory and clock are shared, never written), so reusing it
# across examples is safe.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 64), st.integers(1, 8)), max_size=20),
       st.lists(st.integers(0, 80), max_size=30))
def test_bus_agrees_with_a_linear_model(make, placements, probes):
    """Random placements in half-page units (so both the page cache and the bisect are
    used): the bus accepts exactly the non-overlapping ones, and every guest access reaches
    the device a linear scan picks, at the right offset."""
    bus = MmioBus()
    unit = 0x800
    accepted: list[tuple[int, int, object]] = []
    for index, (start, length) in enumerate(placements):
        base, size = start * unit, length * unit
        device = make(RegisterFile, f"d{index}")
        overlaps = any(b < base + size and base < b + s for b, s, _ in accepted)
        if overlaps:
            with pytest.raises(MmioOverlapError):
                bus.add(base, size, device)
        else:
            bus.add(base, size, device)
            accepted.append((base, size, device))
    assert [r.base for r in bus.regions()] == sorted(b for b, _, _ in accepted)
    for probe in probes:
        addr = probe * unit + 0x10
        expected = next(((b, d) for b, s, d in accepted if b <= addr < b + s), None)
        found = bus.find(addr)
        assert (found.device if found else None) is (expected[1] if expected else None)
        bus.write(addr, 4, probe + 1)
        if expected is None:
            assert bus.read(addr, 4) == 0
        else:
            base, device = expected
            assert device.accesses[-1] == ("write", addr - base, 4, probe + 1)
            assert bus.read(addr, 4) == probe + 1
