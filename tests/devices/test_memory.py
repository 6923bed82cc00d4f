"""GuestMemory: bounds, little-endian accessors, zero-copy views and the host mapping
that backends hand to Unicorn/KVM."""

from __future__ import annotations

import ctypes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petard.core.layout import DRAM_START, PAGE_SIZE
from petard.core.memory import GuestMemory, GuestMemoryError

SIZE = 16 * PAGE_SIZE


@pytest.fixture
def memory():
    mem = GuestMemory(DRAM_START, SIZE)
    yield mem
    mem.close()


def test_attributes(memory):
    assert (memory.base, memory.size, memory.end) == (DRAM_START, SIZE, DRAM_START + SIZE)
    assert memory.host_address % PAGE_SIZE == 0
    assert memory.read(DRAM_START, SIZE) == bytes(SIZE)  # anonymous memory starts zeroed


def test_round_trip_and_little_endian(memory):
    memory.write(DRAM_START + 0x10, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    assert memory.read_u16(DRAM_START + 0x10) == 0x0201
    assert memory.read_u32(DRAM_START + 0x10) == 0x04030201
    assert memory.read_u64(DRAM_START + 0x10) == 0x0807060504030201
    memory.write_u64(DRAM_START + 0x20, 0x1122334455667788)
    assert memory.read(DRAM_START + 0x20, 8) == bytes.fromhex("8877665544332211")
    memory.write_u32(DRAM_START + 0x30, 0xDEADBEEF)
    memory.write_u16(DRAM_START + 0x34, 0xCAFE)
    assert memory.read(DRAM_START + 0x30, 6) == bytes.fromhex("efbeaddefeca")


def test_host_address_is_the_guest_memory(memory):
    """What a backend maps through host_address is the very memory the VMM reads."""
    memory.write(DRAM_START + 0x1234, b"petard")
    assert ctypes.string_at(memory.host_address + 0x1234, 6) == b"petard"
    ctypes.memmove(memory.host_address + SIZE - 4, b"\xaa\xbb\xcc\xdd", 4)
    assert memory.read_u32(memory.end - 4) == 0xDDCCBBAA


def test_view_is_zero_copy(memory):
    window = memory.view(DRAM_START + PAGE_SIZE, 8)
    window[0:4] = b"abcd"
    assert memory.read(DRAM_START + PAGE_SIZE, 4) == b"abcd"
    memory.write(DRAM_START + PAGE_SIZE + 4, b"efgh")
    assert bytes(window) == b"abcdefgh"
    window.release()


@pytest.mark.parametrize(
    "gpa, length",
    [
        (DRAM_START - 1, 1),  # below
        (DRAM_START + SIZE - 3, 4),  # straddles the end
        (DRAM_START + SIZE, 1),  # just past
        (0, 4),  # nowhere near
        (DRAM_START, -1),  # negative length
    ],
)
def test_out_of_range_accesses_raise(memory, gpa, length):
    assert not memory.contains(gpa, length)
    with pytest.raises(GuestMemoryError):
        memory.read(gpa, length)
    with pytest.raises(GuestMemoryError):
        memory.view(gpa, length)
    if length == 4:
        with pytest.raises(GuestMemoryError):
            memory.read_u32(gpa)
        with pytest.raises(GuestMemoryError):
            memory.write_u32(gpa, 0)
        with pytest.raises(GuestMemoryError):
            memory.write(gpa, b"1234")


def test_contains_edges(memory):
    assert memory.contains(DRAM_START, SIZE)
    assert memory.contains(memory.end - 8, 8)
    assert memory.contains(memory.end, 0)
    assert not memory.contains(memory.end - 7, 8)


@pytest.mark.parametrize("base, size", [(DRAM_START, 0), (DRAM_START, 100), (DRAM_START + 1, PAGE_SIZE)])
def test_rejects_unaligned_or_empty(base, size):
    with pytest.raises(ValueError):
        GuestMemory(base, size)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, SIZE - 1), st.binary(min_size=1, max_size=64)), max_size=30))
def test_writes_match_a_bytearray_model(writes):
    memory = GuestMemory(DRAM_START, SIZE)
    try:
        model = bytearray(SIZE)
        for offset, data in writes:
            data = data[: SIZE - offset]
            memory.write(DRAM_START + offset, data)
            model[offset : offset + len(data)] = data
        assert memory.read(DRAM_START, SIZE) == bytes(model)
        for offset, _ in writes:
            if offset + 8 <= SIZE:
                assert memory.read_u64(DRAM_START + offset) == int.from_bytes(model[offset : offset + 8], "little")
    finally:
        memory.close()
