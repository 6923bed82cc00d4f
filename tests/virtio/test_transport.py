"""The virtio-mmio transport through a real MmioBus: register map, status state machine,
feature negotiation, queue programming, notifications, interrupts, reset, and the
DEVICE_NEEDS_RESET path, on the virtio-rng device (the smallest user of the transport)."""

from __future__ import annotations

import struct

from petard.core.boot.fdt import EMPTY, Cells, U64
from petard.core.virtio import spec

from .driver import GSI

RUNNING = spec.STATUS_ACKNOWLEDGE | spec.STATUS_DRIVER | spec.STATUS_FEATURES_OK | spec.STATUS_DRIVER_OK


def test_identification_registers(rng):
    assert rng.read(spec.MAGIC_VALUE) == 0x74726976
    assert rng.read(spec.VERSION) == 2
    assert rng.read(spec.DEVICE_ID) == spec.DEVICE_ID_ENTROPY
    assert rng.read(spec.VENDOR_ID) == 0
    rng.write(spec.QUEUE_SEL, 0)
    assert rng.read(spec.QUEUE_NUM_MAX) == 256
    rng.write(spec.QUEUE_SEL, 1)
    assert rng.read(spec.QUEUE_NUM_MAX) == 0  # no second queue


def test_registers_answer_only_32_bit_reads(rng):
    assert rng.read(spec.MAGIC_VALUE, size=2) == 0
    assert rng.read(spec.MAGIC_VALUE, size=1) == 0
    assert not rng.region.failed


def test_feature_pages_always_offer_version_1(rng):
    features = rng.device_features()
    assert features >> spec.F_VERSION_1 & 1
    assert features == 1 << spec.F_VERSION_1  # upstream's rng offers nothing else


def test_block_offers_event_idx_and_seg_max(blk):
    # upstream's set plus SEG_MAX (see petard.plugins.virtio_blk)
    assert blk.device_features() == (1 << spec.F_VERSION_1) | (1 << spec.F_RING_EVENT_IDX) | (1 << 2)


def test_status_state_machine_accepts_the_spec_sequence(rng):
    rng.start()
    assert rng.status() == RUNNING
    assert rng.device.activated


def test_out_of_order_status_is_refused(rng):
    rng.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE)
    rng.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE | spec.STATUS_DRIVER | spec.STATUS_FEATURES_OK)  # skips DRIVER
    assert rng.status() == spec.STATUS_ACKNOWLEDGE
    rng.write(spec.STATUS, RUNNING)
    assert rng.status() == spec.STATUS_ACKNOWLEDGE


def test_features_ok_is_refused_without_version_1(rng):
    rng.negotiate(accept=0)
    assert not rng.status() & spec.STATUS_FEATURES_OK


def test_unoffered_features_are_not_acked(rng):
    rng.negotiate(accept=(1 << spec.F_VERSION_1) | (1 << spec.F_RING_EVENT_IDX))
    assert rng.device.acked_features == 1 << spec.F_VERSION_1


def test_driver_features_only_writable_while_negotiating(blk):
    blk.start(accept=1 << spec.F_VERSION_1)
    blk.write(spec.DRIVER_FEATURES_SEL, 0)
    blk.write(spec.DRIVER_FEATURES, 1 << spec.F_RING_EVENT_IDX)
    assert not blk.device.has_feature(spec.F_RING_EVENT_IDX)


def test_queue_fields_only_writable_after_features_ok(rng):
    rng.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE)
    rng.write(spec.QUEUE_SEL, 0)
    rng.write(spec.QUEUE_NUM, 16)
    assert rng.device.queues[0].size == 256
    rng.start(queue_size=16)
    rng.write(spec.QUEUE_NUM, 8)  # after DRIVER_OK: ignored
    assert rng.device.queues[0].size == 16


def test_queue_ready_reads_back(rng):
    rng.negotiate()
    rng.write(spec.QUEUE_SEL, 0)
    assert rng.read(spec.QUEUE_READY) == 0
    rng.setup_queues()
    rng.write(spec.QUEUE_SEL, 0)
    assert rng.read(spec.QUEUE_READY) == 1


def test_notify_serves_the_queue_and_interrupts_on_the_line(rng):
    rng.start()
    buffer = rng.buffer(64, writable=True)
    head = rng.queues[0].submit([buffer])
    rng.notify()
    assert rng.queues[0].take_used() == [(head, 64)]
    assert rng.contents(buffer) != bytes(64)
    assert rng.interrupts() == 1
    assert rng.read(spec.INTERRUPT_STATUS) == spec.INTERRUPT_VRING
    rng.write(spec.INTERRUPT_ACK, spec.INTERRUPT_VRING)
    assert rng.read(spec.INTERRUPT_STATUS) == 0


def test_notify_before_driver_ok_waits_for_activation(rng):
    # Linux's balloon kicks its statistics queue before DRIVER_OK; the kick must not be lost.
    rng.negotiate()
    rng.setup_queues()
    head = rng.queues[0].submit([rng.buffer(8, writable=True)])
    rng.notify()
    assert rng.queues[0].take_used() == []
    rng.write(spec.STATUS, RUNNING)
    assert rng.queues[0].take_used() == [(head, 8)]


def test_notify_before_driver_ok_is_forgotten_on_reset(rng):
    rng.negotiate()
    rng.setup_queues()
    rng.queues[0].submit([rng.buffer(8, writable=True)])
    rng.notify()
    rng.write(spec.STATUS, 0)
    rng.negotiate()
    rng.setup_queues()
    rng.queues[0].submit([rng.buffer(8, writable=True)])     # not kicked since the reset
    rng.write(spec.STATUS, RUNNING)
    assert rng.queues[0].take_used() == []


def test_notify_of_a_queue_that_does_not_exist_is_ignored(rng):
    rng.start()
    rng.notify(7)
    assert rng.status() == RUNNING


def test_reset_clears_the_device(rng):
    rng.start()
    rng.queues[0].submit([rng.buffer(8, writable=True)])
    rng.notify()
    rng.write(spec.STATUS, 0)
    assert rng.status() == 0
    assert rng.read(spec.INTERRUPT_STATUS) == 0
    assert rng.device.acked_features == 0
    queue = rng.device.queues[0]
    assert (queue.ready, queue.size, queue.next_avail, queue.next_used) == (False, 256, 0, 0)
    rng.start()  # and it can be brought up again
    assert rng.status() == RUNNING


def test_activation_with_an_unready_queue_needs_reset(rng):
    rng.negotiate()
    rng.write(spec.STATUS, RUNNING)  # no queue set up
    assert rng.status() & spec.STATUS_DEVICE_NEEDS_RESET
    assert rng.read(spec.INTERRUPT_STATUS) & spec.INTERRUPT_CONFIG
    assert rng.interrupts() == 1


def test_activation_with_a_queue_outside_memory_needs_reset(rng):
    rng.negotiate()
    rng.setup_queues()
    rng.write(spec.QUEUE_SEL, 0)
    rng.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE | spec.STATUS_DRIVER | spec.STATUS_FEATURES_OK)
    rng.write(spec.QUEUE_DESC_HIGH, 0x10)  # 64 GiB up: not guest memory
    rng.write(spec.STATUS, RUNNING)
    assert rng.status() & spec.STATUS_DEVICE_NEEDS_RESET


def test_queue_size_must_be_a_power_of_two(rng):
    rng.negotiate()
    rng.setup_queues(size=100)
    rng.write(spec.STATUS, RUNNING)
    assert rng.status() & spec.STATUS_DEVICE_NEEDS_RESET


def test_malformed_chain_sets_needs_reset_and_stops_service(rng, caplog):
    rng.start()
    queue = rng.queues[0]
    queue.publish(300)  # head index beyond the queue size
    rng.notify()
    assert rng.status() & spec.STATUS_DEVICE_NEEDS_RESET
    assert "device needs reset" in caplog.text
    assert not rng.region.failed  # the bus did not have to contain an exception
    good = rng.buffer(8, writable=True)
    queue.submit([good])
    rng.notify()
    assert queue.take_used() == []  # no service until reset
    rng.write(spec.STATUS, 0)
    rng.start()
    rng.queues[0].submit([rng.buffer(8, writable=True)])
    rng.notify()
    assert len(rng.queues[0].take_used()) == 1


def test_config_generation_and_interrupt_on_config_change(blk):
    blk.start()
    generation = blk.read(spec.CONFIG_GENERATION)
    blk.device.signal_config_change()
    assert blk.read(spec.CONFIG_GENERATION) == generation + 1
    assert blk.read(spec.INTERRUPT_STATUS) == spec.INTERRUPT_CONFIG


def test_fdt_node_is_upstreams(rng):
    [node] = rng.device.fdt_nodes(rng.base, rng.device.ctx.irqs)
    assert node.name == f"virtio_mmio@{rng.base:x}"
    assert node.properties["compatible"] == "virtio,mmio"
    assert node.properties["dma-coherent"] is EMPTY
    assert node.properties["reg"] == U64(rng.base, 0x1000)
    assert node.properties["interrupts"] == Cells(0, GSI, 1)
    assert node.properties["interrupt-parent"] == Cells(1)


def test_event_idx_suppresses_interrupts_until_used_event(blk):
    blk.start()
    queue = blk.queues[0]
    assert blk.device.queues[0].event_idx
    queue.set_used_event(1)  # "interrupt me when used idx passes 1", i.e. after 2 entries
    header = struct.pack("<IIQ", 0, 0, 0)

    def read_request():
        return [blk.buffer(header), blk.buffer(512, writable=True), blk.buffer(1, writable=True)]

    queue.submit(read_request())
    blk.notify()
    assert blk.interrupts() == 0
    queue.submit(read_request())
    blk.notify()
    assert blk.interrupts() == 1
    assert queue.avail_event() == 2  # the device asks to be notified for the next entry


def test_no_interrupt_flag_without_event_idx(rng):
    rng.start()
    queue = rng.queues[0]
    rng.memory.write_u16(queue.avail, spec.AVAIL_F_NO_INTERRUPT)
    queue.submit([rng.buffer(8, writable=True)])
    rng.notify()
    assert len(queue.take_used()) == 1
    assert rng.interrupts() == 0


def test_save_and_restore_state_round_trips(rng, make_bench):
    rng.start()
    rng.queues[0].submit([rng.buffer(8, writable=True)])
    rng.notify()
    state = rng.device.save_state()
    other = make_bench("virtio-rng")
    other.device.restore_state(state)
    assert other.device.save_state() == state


def test_a_descriptor_table_ending_at_the_end_of_guest_memory_is_used(rng):
    rng.negotiate()
    rng.setup_queues(size=16)
    queue = rng.queues[0]
    queue.desc = rng.memory.end - spec.DESCRIPTOR_SIZE * queue.size
    rng.write(spec.QUEUE_SEL, 0)
    rng.write(spec.QUEUE_DESC_LOW, queue.desc & 0xFFFF_FFFF)
    rng.write(spec.QUEUE_DESC_HIGH, queue.desc >> 32)
    rng.write(spec.STATUS, RUNNING)
    assert rng.status() == RUNNING
    queue.next_free = queue.size - 2  # a chain through the table's last entry and back to 0
    buffers = [rng.buffer(8, writable=True) for _ in range(3)]
    head = queue.submit(buffers)
    rng.notify()
    assert queue.take_used() == [(head, 24)]
