"""A hostile guest: hypothesis writes random descriptor tables, ring indices, chains and
register sequences. Whatever it does, no exception escapes into the bus (the vCPU loop),
and the device's answer matches an independent model of the virtio rules: well-formed
chains are served in order, and the first malformed one puts the device into
DEVICE_NEEDS_RESET."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petard.core.layout import DRAM_START
from petard.core.virtio import spec
from petard.plugins.virtio_rng import MAX_REQUEST_BYTES

from .driver import BUFFER_AREA, MEMORY_SIZE, QUEUE_AREA, QUEUE_AREA_STRIDE, VirtioTestBench

QUEUE_SIZE = 16
MEMORY_END = DRAM_START + MEMORY_SIZE
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

addresses = st.one_of(
    st.integers(BUFFER_AREA, MEMORY_END - 1),          # data area
    st.integers(DRAM_START, MEMORY_END - 1),           # anywhere in RAM, the rings included
    st.integers(0, DRAM_START - 1),                    # below RAM
    st.integers(MEMORY_END - 64, MEMORY_END + 64),     # straddling the end
    st.integers(0, 2**64 - 1),
)
lengths = st.one_of(st.integers(0, 4096), st.integers(0, 2**32 - 1))
flags = st.one_of(st.sampled_from([0, spec.DESC_F_NEXT, spec.DESC_F_WRITE, spec.DESC_F_NEXT | spec.DESC_F_WRITE]),
                  st.integers(0, 0xFFFF))
nexts = st.one_of(st.integers(0, QUEUE_SIZE - 1), st.integers(0, 0xFFFF))
descriptors = st.tuples(addresses, lengths, flags, nexts)
heads = st.one_of(st.integers(0, QUEUE_SIZE - 1), st.integers(0, 0xFFFF))

# Mostly sensible descriptors (in the data area, linked to the next one, readable before
# writable more often than not) so that chains get served, with a few fields corrupted.
sane_descriptors = st.builds(
    lambda i, address, length, flag: (address, length, flag, (i + 1) % QUEUE_SIZE),
    st.integers(0, QUEUE_SIZE - 1), st.integers(BUFFER_AREA, BUFFER_AREA + 0x80000), st.integers(0, 2048),
    st.sampled_from([0, spec.DESC_F_WRITE, spec.DESC_F_NEXT, spec.DESC_F_NEXT | spec.DESC_F_WRITE]))


@st.composite
def tables(draw):
    if draw(st.booleans()):
        return draw(st.lists(descriptors, min_size=QUEUE_SIZE, max_size=QUEUE_SIZE))
    table = draw(st.lists(sane_descriptors, min_size=QUEUE_SIZE, max_size=QUEUE_SIZE))
    for _ in range(draw(st.integers(0, 2))):
        table[draw(st.integers(0, QUEUE_SIZE - 1))] = draw(descriptors)
    return table


rings = st.one_of(st.lists(heads, min_size=QUEUE_SIZE, max_size=QUEUE_SIZE),
                  st.lists(st.integers(0, QUEUE_SIZE - 1), min_size=QUEUE_SIZE, max_size=QUEUE_SIZE))


def expected_outcome(table, ring, avail_idx):
    """The virtio rules, written independently of the device: (served [(head, length)],
    malformed?) for the entries made available."""
    served = []
    pending = avail_idx & 0xFFFF
    if pending > QUEUE_SIZE:
        return served, True
    for slot in range(pending):
        head = ring[slot]
        if head >= QUEUE_SIZE:
            return served, True
        index, seen_writable, writable_length = head, False, 0
        for _ in range(QUEUE_SIZE + 1):
            address, length, flag, next_index = table[index]
            if flag & spec.DESC_F_INDIRECT:
                return served, True
            if not (DRAM_START <= address and address + length <= MEMORY_END):
                return served, True
            if flag & spec.DESC_F_WRITE:
                seen_writable = True
                writable_length += length
            elif seen_writable:
                return served, True
            if not flag & spec.DESC_F_NEXT:
                break
            if next_index >= QUEUE_SIZE:
                return served, True
            index = next_index
        else:
            return served, True
        served.append((head, min(writable_length, MAX_REQUEST_BYTES)))
    return served, False


def writes_into_rings(table, ring, avail_idx):
    """Whether some valid writable buffer overlaps the queue structures (then the device
    legitimately rewrites the rings under the model's feet; only survival is checked)."""
    for address, length, flag, _ in table:
        if flag & spec.DESC_F_WRITE and address < QUEUE_AREA + QUEUE_AREA_STRIDE and address + length > QUEUE_AREA:
            return True
    return False


def program(bench, table, ring, avail_idx):
    queue = bench.queues[0]
    for index, (address, length, flag, next_index) in enumerate(table):
        bench.memory.write(queue.desc + 16 * index, struct.pack("<QIHH", address, length, flag, next_index))
    for slot, head in enumerate(ring):
        bench.memory.write_u16(queue.avail + 4 + 2 * slot, head)
    bench.memory.write_u16(queue.avail + 2, avail_idx)


@SETTINGS
@given(table=tables(), ring=rings,
       avail_idx=st.one_of(st.integers(0, QUEUE_SIZE + 2), st.integers(0, 0xFFFF)))
def test_random_queues_are_served_or_rejected_as_the_rules_say(table, ring, avail_idx):
    bench = VirtioTestBench("virtio-rng")
    try:
        bench.start(queue_size=QUEUE_SIZE)
        program(bench, table, ring, avail_idx)
        bench.notify()
        assert not bench.region.failed
        if writes_into_rings(table, ring, avail_idx):
            return
        served, malformed = expected_outcome(table, ring, avail_idx)
        assert bench.queues[0].take_used() == served
        assert bool(bench.status() & spec.STATUS_DEVICE_NEEDS_RESET) == malformed
        if malformed:
            assert bench.read(spec.INTERRUPT_STATUS) & spec.INTERRUPT_CONFIG
    finally:
        bench.close()


@SETTINGS
@given(table=tables(), ring=rings,
       avail_idx=st.one_of(st.integers(0, QUEUE_SIZE + 2), st.integers(0, 0xFFFF)))
def test_block_device_survives_random_queues(tmp_path_factory, table, ring, avail_idx):
    disk = tmp_path_factory.getbasetemp() / "hostile.img"
    if not disk.exists():
        disk.write_bytes(bytes(512 * 64))
    bench = VirtioTestBench("virtio-blk", path=str(disk))
    try:
        bench.start(queue_size=QUEUE_SIZE)
        program(bench, table, ring, avail_idx)
        bench.notify()
        assert not bench.region.failed
        used = bench.queues[0].take_used()
        assert all(head < QUEUE_SIZE for head, _ in used)
        served, malformed = expected_outcome(table, ring, avail_idx)
        if not writes_into_rings(table, ring, avail_idx):
            assert [head for head, _ in used] == [head for head, _ in served]
            assert bool(bench.status() & spec.STATUS_DEVICE_NEEDS_RESET) == malformed
    finally:
        bench.close()


register_offsets = st.one_of(
    st.sampled_from([spec.DEVICE_FEATURES_SEL, spec.DRIVER_FEATURES, spec.DRIVER_FEATURES_SEL, spec.QUEUE_SEL,
                     spec.QUEUE_NUM, spec.QUEUE_READY, spec.QUEUE_NOTIFY, spec.INTERRUPT_ACK, spec.STATUS,
                     spec.QUEUE_DESC_LOW, spec.QUEUE_DESC_HIGH, spec.QUEUE_DRIVER_LOW, spec.QUEUE_DRIVER_HIGH,
                     spec.QUEUE_DEVICE_LOW, spec.QUEUE_DEVICE_HIGH]),
    st.integers(0, 0xFFF),
)
accesses = st.tuples(st.booleans(), register_offsets, st.sampled_from([1, 2, 4, 8]), st.integers(0, 2**32 - 1))


@SETTINGS
@given(st.lists(accesses, max_size=60), st.integers(0, 0xFFFF))
def test_random_register_sequences_never_break_the_bus(sequence, avail_idx):
    bench = VirtioTestBench("virtio-rng")
    try:
        bench.start(queue_size=QUEUE_SIZE)
        bench.memory.write_u16(bench.queues[0].avail + 2, avail_idx)
        for is_write, offset, size, value in sequence:
            value &= (1 << (8 * size)) - 1
            if is_write:
                bench.write(offset, value, size)
            else:
                assert 0 <= bench.read(offset, size) < 1 << (8 * size)
        bench.notify()
        assert not bench.region.failed
    finally:
        bench.close()
