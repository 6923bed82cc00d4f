"""virtio-blk on a real host file, driven through the transport like a guest driver would:
reads, writes, flush, GET_ID, read-only drives, capacity, malformed requests, PATCH-style
backing-file swap and the rate limiter."""

from __future__ import annotations

import os
import struct

import pytest

from petard.core.virtio import spec
from petard.core.virtio.queue import Descriptor
from petard.plugins import virtio_blk as blk_module

from .conftest import DISK_SECTORS
from .driver import Buffer

HEADER = struct.Struct("<IIQ")


def request(bench, kind, sector=0, data=None, read_length=0, status_length=1):
    """Submit one request; returns (head, data buffer or None, status buffer)."""
    buffers = [bench.buffer(HEADER.pack(kind, 0, sector))]
    data_buffer = None
    if data is not None:
        data_buffer = bench.buffer(data)
        buffers.append(data_buffer)
    if read_length:
        data_buffer = bench.buffer(read_length, writable=True)
        buffers.append(data_buffer)
    status = bench.buffer(status_length, writable=True)
    buffers.append(status)
    head = bench.queues[0].submit(buffers)
    bench.notify()
    return head, data_buffer, status


def status_of(bench, status_buffer):
    return bench.contents(status_buffer)[0]


def test_capacity_and_seg_max_in_config_space(blk):
    assert blk.read(spec.CONFIG_SPACE, size=4) == DISK_SECTORS
    assert blk.read(spec.CONFIG_SPACE + 4, size=4) == 0
    assert blk.read(spec.CONFIG_SPACE, size=8) == DISK_SECTORS
    assert blk.read(spec.CONFIG_SPACE + 8, size=4) == 0  # size_max: not offered
    assert blk.read(spec.CONFIG_SPACE + 12, size=4) == blk_module.SEG_MAX


def test_read_sectors(blk):
    blk.start()
    head, data, status = request(blk, blk_module.T_IN, sector=3, read_length=1024)
    assert status_of(blk, status) == blk_module.S_OK
    assert blk.contents(data) == bytes([3]) * 512 + bytes([4]) * 512
    assert blk.queues[0].take_used() == [(head, 1025)]


def test_read_into_scattered_buffers(blk):
    blk.start()
    parts = [blk.buffer(512, writable=True), blk.buffer(1024, writable=True)]
    status = blk.buffer(1, writable=True)
    blk.queues[0].submit([blk.buffer(HEADER.pack(blk_module.T_IN, 0, 10))] + parts + [status])
    blk.notify()
    assert blk.contents(parts[0]) == bytes([10]) * 512
    assert blk.contents(parts[1]) == bytes([11]) * 512 + bytes([12]) * 512


def test_write_reaches_the_file(blk, disk):
    blk.start()
    payload = os.urandom(1024)
    head, _, status = request(blk, blk_module.T_OUT, sector=5, data=payload)
    assert status_of(blk, status) == blk_module.S_OK
    assert disk.read_bytes()[5 * 512:7 * 512] == payload
    assert blk.queues[0].take_used() == [(head, 1)]


def test_read_beyond_the_end_is_an_io_error(blk):
    blk.start()
    _, _, status = request(blk, blk_module.T_IN, sector=DISK_SECTORS - 1, read_length=1024)
    assert status_of(blk, status) == blk_module.S_IOERR


def test_partial_sector_is_an_io_error(blk):
    blk.start()
    _, _, status = request(blk, blk_module.T_IN, sector=0, read_length=100)
    assert status_of(blk, status) == blk_module.S_IOERR


def test_unknown_request_is_unsupported(blk):
    blk.start()
    _, _, status = request(blk, 11, sector=0)  # DISCARD: not offered
    assert status_of(blk, status) == blk_module.S_UNSUPP


def test_request_without_status_byte_is_returned_empty(blk):
    blk.start()
    head = blk.queues[0].submit([blk.buffer(HEADER.pack(blk_module.T_IN, 0, 0))])
    blk.notify()
    assert blk.queues[0].take_used() == [(head, 0)]
    assert blk.device.activated


def test_short_header_is_an_io_error(blk):
    blk.start()
    status = blk.buffer(1, writable=True)
    blk.queues[0].submit([blk.buffer(b"\0" * 8), status])
    blk.notify()
    assert status_of(blk, status) == blk_module.S_IOERR


def test_get_id_is_dev_rdev_ino(blk, disk):
    blk.start()
    _, data, status = request(blk, blk_module.T_GET_ID, read_length=20)
    info = os.stat(disk)
    expected = f"{info.st_dev}{info.st_rdev}{info.st_ino}".encode()[:20].ljust(20, b"\0")
    assert status_of(blk, status) == blk_module.S_OK
    assert blk.contents(data) == expected


def test_flush_fsyncs_only_in_writeback_mode(make_bench, disk, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(blk_module.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    unsafe = make_bench("virtio-blk", path=str(disk))
    assert not unsafe.device_features() >> blk_module.F_FLUSH & 1
    unsafe.start()
    _, _, status = request(unsafe, blk_module.T_FLUSH)
    assert status_of(unsafe, status) == blk_module.S_OK and calls == []
    writeback = make_bench("virtio-blk", path=str(disk), cache_type="Writeback")
    assert writeback.device_features() >> blk_module.F_FLUSH & 1
    writeback.start()
    _, _, status = request(writeback, blk_module.T_FLUSH)
    assert status_of(writeback, status) == blk_module.S_OK and calls == [writeback.device.file.fd]


def test_read_only_drive(make_bench, disk):
    before = disk.read_bytes()
    bench = make_bench("virtio-blk", path=str(disk), read_only=True)
    assert bench.device_features() >> blk_module.F_RO & 1
    with pytest.raises(OSError):
        os.write(bench.device.file.fd, b"x")  # the file itself is opened read-only
    bench.start()
    _, _, status = request(bench, blk_module.T_OUT, sector=0, data=b"\xff" * 512)
    assert status_of(bench, status) == blk_module.S_IOERR
    assert disk.read_bytes() == before


def test_swapping_the_backing_file_updates_capacity_and_interrupts(blk, tmp_path):
    blk.start()
    bigger = tmp_path / "bigger.img"
    bigger.write_bytes(b"\x5a" * 512 * 100)
    fd = blk.device.open_backing_file(str(bigger))
    edges = blk.interrupts()
    blk.device.update(fd=fd, path=str(bigger))
    assert blk.read(spec.CONFIG_SPACE, size=8) == 100
    assert blk.interrupts() == edges + 1
    assert blk.read(spec.INTERRUPT_STATUS) & spec.INTERRUPT_CONFIG
    _, data, _ = request(blk, blk_module.T_IN, sector=99, read_length=512)
    assert blk.contents(data) == b"\x5a" * 512


def test_ops_rate_limiter_holds_requests_until_refill(make_bench, disk):
    limiter = {"ops": {"size": 2, "refill_time": 1000}}
    bench = make_bench("virtio-blk", path=str(disk), rate_limiter=limiter)
    bench.start()
    for sector in range(3):
        request(bench, blk_module.T_IN, sector=sector, read_length=512)
    assert len(bench.queues[0].take_used()) == 2  # the third waits for a token
    bench.clock.advance(100_000_000)  # retry after 100 ms: 1 token refilled per 500 ms, none yet
    assert bench.queues[0].take_used() == []
    bench.clock.advance(500_000_000)
    assert len(bench.queues[0].take_used()) == 1


def test_bandwidth_limiter_replaced_by_update(make_bench, disk):
    bench = make_bench("virtio-blk", path=str(disk), rate_limiter={"bandwidth": {"size": 1024, "refill_time": 1000}})
    bench.start()
    for sector in range(3):
        request(bench, blk_module.T_IN, sector=sector, read_length=512)
    assert len(bench.queues[0].take_used()) == 2
    bench.device.update(rate_limiter={}, replace_limiter=True)  # unlimited now: the waiting one goes
    assert len(bench.queues[0].take_used()) == 1


def test_header_data_and_status_may_share_descriptors(blk, disk):
    blk.start()
    payload = os.urandom(512)
    status = blk.buffer(1, writable=True)
    blk.queues[0].submit([blk.buffer(HEADER.pack(blk_module.T_OUT, 0, 2) + payload), status])
    blk.notify()
    assert status_of(blk, status) == blk_module.S_OK
    assert disk.read_bytes()[2 * 512:3 * 512] == payload
    header = HEADER.pack(blk_module.T_IN, 0, 7)
    data_and_status = blk.buffer(513, writable=True)
    head = blk.queues[0].submit([blk.buffer(header[:10]), blk.buffer(header[10:]), data_and_status])
    blk.notify()
    assert blk.contents(data_and_status) == bytes([7]) * 512 + bytes([blk_module.S_OK])
    assert blk.queues[0].take_used()[-1] == (head, 513)


def test_short_writes_are_carried_on(blk, disk, monkeypatch):
    real = os.pwritev
    calls = []

    def at_most_300_bytes(fd, views, offset):
        calls.append(offset)
        budget, taken = 300, []
        for view in views:
            taken.append(view[:budget])
            budget -= len(taken[-1])
            if not budget:
                break
        return real(fd, taken, offset)

    monkeypatch.setattr(blk_module.os, "pwritev", at_most_300_bytes)
    blk.start()
    payload = os.urandom(1536)
    parts = [blk.buffer(payload[:512]), blk.buffer(payload[512:])]
    status = blk.buffer(1, writable=True)
    blk.queues[0].submit([blk.buffer(HEADER.pack(blk_module.T_OUT, 0, 4))] + parts + [status])
    blk.notify()
    assert status_of(blk, status) == blk_module.S_OK
    assert disk.read_bytes()[4 * 512:7 * 512] == payload
    assert calls == [4 * 512 + done for done in range(0, 1536, 300)]


def test_a_write_making_no_progress_is_an_io_error(blk, monkeypatch):
    monkeypatch.setattr(blk_module.os, "pwritev", lambda fd, views, offset: 0)
    blk.start()
    _, _, status = request(blk, blk_module.T_OUT, sector=0, data=b"\1" * 512)
    assert status_of(blk, status) == blk_module.S_IOERR


def test_buffers_may_end_at_the_end_of_guest_memory(blk):
    end = blk.memory.end
    blk.start()
    data, status = Buffer(end - 513, 512, True), Buffer(end - 1, 1, True)
    head = blk.queues[0].submit([blk.buffer(HEADER.pack(blk_module.T_IN, 0, 9)), data, status])
    blk.notify()
    assert blk.contents(data) == bytes([9]) * 512 and blk.contents(status) == bytes([blk_module.S_OK])
    assert blk.queues[0].take_used() == [(head, 513)]


def test_a_buffer_past_the_end_of_guest_memory_needs_reset(blk, caplog):
    end = blk.memory.end
    blk.start()
    blk.queues[0].submit([blk.buffer(HEADER.pack(blk_module.T_IN, 0, 0)), Buffer(end - 511, 512, True),
                          blk.buffer(1, writable=True)])
    blk.notify()
    assert blk.status() & spec.STATUS_DEVICE_NEEDS_RESET
    assert "is not in guest memory" in caplog.text
    assert blk.queues[0].take_used() == []


@pytest.mark.parametrize("lengths, start, end, pieces", [
    ([16, 512, 1], 16, 529, [(0x1000, 512), (0x2000, 1)]),   # data and status after a header
    ([529], 16, 528, [(16, 512)]),                           # everything in one buffer
    ([10, 6, 512], 0, 16, [(0, 10), (0x1000, 6)]),           # a header split over two buffers
    ([16, 0, 512, 0, 1], 16, 528, [(0x2000, 512)]),          # empty buffers are left out
    ([16, 512], 528, 528, []),                               # an empty range
    ([100, 100], 50, 150, [(50, 50), (0x1000, 50)]),         # cut inside both
])
def test_pieces_cut_the_buffers_at_byte_offsets(lengths, start, end, pieces):
    descriptors = [Descriptor(0x1000 * index, length, False) for index, length in enumerate(lengths)]
    assert blk_module._pieces(descriptors, start, end) == pieces


def test_a_failing_read_is_an_io_error(blk, monkeypatch, caplog):
    def failing(fd, views, offset):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(blk_module.os, "preadv", failing)
    blk.start()
    _, _, status = request(blk, blk_module.T_IN, sector=0, read_length=512)
    assert status_of(blk, status) == blk_module.S_IOERR
    assert "read of 512 bytes at sector 0 failed: [Errno 5] Input/output error" in caplog.text
    assert blk.device.activated
