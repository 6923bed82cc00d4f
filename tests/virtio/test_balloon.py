"""virtio-balloon driven through the transport like Linux's driver: features and queues by
configuration, inflated pages given back to the host (they read as zero), page numbers
outside memory refused and counted, the statistics buffer handed back at each polling
interval, free page reporting and hinting runs, and the API's post-boot rules with upstream's
texts."""

from __future__ import annotations

import struct

import pytest

from petard.core.layout import DRAM_START
from petard.core.virtio import spec
from petard.plugins import virtio_balloon as balloon_module
from petard.plugins.virtio_balloon import BalloonError

from .driver import Buffer

PAGE = 4096
SECOND_NS = 1_000_000_000


def pfns(*numbers: int) -> bytes:
    return b"".join(struct.pack("<I", number) for number in numbers)


def stats(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("<HQ", tag, value) for tag, value in pairs)


def page_number(address: int) -> int:
    return address >> balloon_module.PAGE_SHIFT


def config(bench) -> tuple[int, ...]:
    """num_pages, actual, free_page_hint_cmd_id."""
    return tuple(bench.read(spec.CONFIG_SPACE + 4 * field) for field in range(3))


def free_pages(address: int, length: int) -> Buffer:
    """A free page range as the driver hands it over: the pages themselves, device-writable."""
    return Buffer(address, length, writable=True)


@pytest.fixture
def filled_pages(make_bench):
    """A started balloon (stats every 2 s, hinting and reporting on) and two pages of 0xAA."""
    bench = make_bench("virtio-balloon", amount_mib=1, deflate_on_oom=True, stats_polling_interval_s=2,
                       free_page_hinting=True, free_page_reporting=True)
    bench.start()
    pages = DRAM_START + 3 * (1 << 20)
    bench.memory.write(pages, b"\xAA" * 2 * PAGE)
    return bench, pages


def test_features_and_queues_follow_the_configuration(make_bench):
    plain = make_bench("virtio-balloon", amount_mib=0, deflate_on_oom=False)
    assert plain.device_features() == 1 << spec.F_VERSION_1
    plain.start()
    assert len(plain.queues) == 2
    every = make_bench("virtio-balloon", amount_mib=0, deflate_on_oom=True, stats_polling_interval_s=1,
                       free_page_hinting=True, free_page_reporting=True)
    assert every.device_features() == (1 << spec.F_VERSION_1 | 1 << balloon_module.F_STATS_VQ
                                       | 1 << balloon_module.F_DEFLATE_ON_OOM
                                       | 1 << balloon_module.F_FREE_PAGE_HINTING
                                       | 1 << balloon_module.F_FREE_PAGE_REPORTING)
    every.start()
    assert len(every.queues) == 5
    assert every.read(spec.DEVICE_ID) == spec.DEVICE_ID_BALLOON


def test_the_target_is_in_the_config_space_and_the_driver_reports_actual(filled_pages):
    bench, _ = filled_pages
    assert config(bench) == (256, 0, 0)
    bench.write(spec.CONFIG_SPACE + 4, 100)
    assert bench.device.actual_pages == 100


def test_inflated_pages_read_as_zero_and_numbers_outside_memory_are_refused(filled_pages):
    bench, pages = filled_pages
    first = page_number(pages)
    outside = page_number(DRAM_START + bench.memory.size) + 10
    head = bench.queues[0].submit([bench.buffer(pfns(first, first + 1, outside))])
    bench.notify(0)
    assert bench.queues[0].take_used() == [(head, 0)]
    assert bench.memory.read(pages, 2 * PAGE) == bytes(2 * PAGE)
    assert bench.device.counters["inflated_pages"] == 2
    assert bench.device.counters["bad_page_numbers"] == 1


def test_duplicate_page_numbers_are_discarded_once_and_bad_ones_logged_once(filled_pages, caplog):
    bench, pages = filled_pages
    first = page_number(pages)
    outside = page_number(DRAM_START + bench.memory.size)
    with caplog.at_level("WARNING"):
        for _ in range(3):
            bench.queues[0].submit([bench.buffer(pfns(first, first, first + 1, outside, 0xFFFF_FFFF))])
            bench.notify(0)
    assert bench.memory.read(pages, 2 * PAGE) == bytes(2 * PAGE)
    assert bench.device.counters["inflated_pages"] == 3 * 2
    assert bench.device.counters["bad_page_numbers"] == 3 * 2
    warnings = [record for record in caplog.records if "outside guest memory" in record.getMessage()]
    assert len(warnings) == 1 and "virtio-balloon" in warnings[0].getMessage()


def test_a_driver_that_never_answers_leaves_the_device_serving(filled_pages):
    bench, _ = filled_pages
    bench.device.set_target_mib(2)                     # nobody inflates, nobody posts statistics
    bench.clock.advance(10 * SECOND_NS)
    assert bench.device.statistics() == {"target_pages": 512, "actual_pages": 0, "target_mib": 2, "actual_mib": 0}
    bench.device.set_target_mib(0)
    assert config(bench)[0] == 0
    assert bench.status() & spec.STATUS_DEVICE_NEEDS_RESET == 0


def test_a_descriptor_of_the_wrong_size_is_skipped_and_the_device_keeps_serving(filled_pages):
    bench, pages = filled_pages
    head = bench.queues[0].submit([bench.buffer(b"\1\2\3")])
    bench.notify(0)
    assert bench.queues[0].take_used() == [(head, 0)]
    assert bench.device.counters["bad_descriptors"] == 1
    assert bench.status() & spec.STATUS_DEVICE_NEEDS_RESET == 0
    bench.queues[0].submit([bench.buffer(pfns(page_number(pages)))])
    bench.notify(0)
    assert bench.memory.read(pages, PAGE) == bytes(PAGE)


def test_deflate_is_acknowledged(filled_pages):
    bench, pages = filled_pages
    head = bench.queues[1].submit([bench.buffer(pfns(page_number(pages)))])
    bench.notify(1)
    assert bench.queues[1].take_used() == [(head, 0)]
    assert bench.memory.read(pages, PAGE) == b"\xAA" * PAGE      # the guest just uses it again


def test_statistics_are_asked_for_at_each_polling_interval(filled_pages):
    bench, _ = filled_pages
    stats_queue = bench.queues[2]
    head = stats_queue.submit([bench.buffer(stats((4, 1000), (5, 5000), (6, 3000), (99, 1)))])
    bench.notify(2)
    assert stats_queue.take_used() == []                 # held until the interval passes
    assert bench.device.statistics() == {"target_pages": 256, "actual_pages": 0, "target_mib": 1,
                                         "actual_mib": 0, "free_memory": 1000, "total_memory": 5000,
                                         "available_memory": 3000}
    assert bench.device.counters["stats_update_fails"] == 1      # tag 99
    bench.clock.advance(2 * SECOND_NS)
    assert stats_queue.take_used() == [(head, 0)]
    stats_queue.submit([bench.buffer(stats((4, 900)))])
    bench.notify(2)
    assert bench.device.statistics()["free_memory"] == 900


def test_the_polling_interval_can_change_but_not_turn_on_or_off(filled_pages, make_bench):
    bench, _ = filled_pages
    bench.device.set_stats_interval(5)
    assert bench.device.stats_interval_s == 5
    with pytest.raises(BalloonError, match="Statistics cannot be enabled/disabled after activation."):
        bench.device.set_stats_interval(0)
    without = make_bench("virtio-balloon", amount_mib=0, deflate_on_oom=False)
    without.start()
    with pytest.raises(BalloonError, match="Statistics cannot be enabled/disabled after activation."):
        without.device.set_stats_interval(1)
    with pytest.raises(BalloonError, match="Received stats query when stats are disabled."):
        without.device.statistics()


def test_a_new_target_interrupts_the_driver_and_is_bounded_by_memory(filled_pages, make_bench):
    bench, _ = filled_pages
    before = bench.interrupts()
    bench.device.set_target_mib(2)
    assert config(bench)[0] == 512
    assert bench.interrupts() == before + 1
    assert bench.read(spec.INTERRUPT_STATUS) & spec.INTERRUPT_CONFIG
    with pytest.raises(BalloonError, match="Requested memory should be less than 5MiB"):
        bench.device.set_target_mib(5)                   # the bench has 4 MiB
    inactive = make_bench("virtio-balloon", amount_mib=0, deflate_on_oom=False)
    with pytest.raises(BalloonError, match="Device not activated yet."):
        inactive.device.set_target_mib(1)


def test_reported_free_pages_are_discarded(filled_pages):
    bench, pages = filled_pages
    reporting = bench.queues[4]
    head = reporting.submit([free_pages(pages, 2 * PAGE)])
    bench.notify(4)
    assert reporting.take_used() == [(head, 0)]
    assert bench.memory.read(pages, 2 * PAGE) == bytes(2 * PAGE)


def test_a_hinting_run_discards_hinted_pages_until_it_is_stopped(filled_pages):
    bench, pages = filled_pages
    hinting = bench.queues[3]
    device = bench.device
    assert device.hinting_status() == {"host_cmd": 0, "guest_cmd": None}
    device.start_hinting(acknowledge_on_stop=False)
    command = config(bench)[2]
    assert command == 2
    hinting.submit([bench.buffer(struct.pack("<I", command))])
    hinting.submit([free_pages(pages, PAGE)])
    bench.notify(3)
    assert bench.memory.read(pages, PAGE) == bytes(PAGE)
    assert device.hinting_status() == {"host_cmd": 2, "guest_cmd": 2}
    device.stop_hinting()
    assert config(bench)[2] == balloon_module.FREE_PAGE_HINT_DONE
    bench.memory.write(pages, b"\xBB" * PAGE)
    hinting.submit([free_pages(pages, PAGE)])        # a range after the run ended
    bench.notify(3)
    assert bench.memory.read(pages, PAGE) == b"\xBB" * PAGE
    device.start_hinting()
    assert config(bench)[2] == 3


def test_hinting_when_not_enabled_is_refused(make_bench):
    bench = make_bench("virtio-balloon", amount_mib=0, deflate_on_oom=False)
    bench.start()
    for call in (bench.device.start_hinting, bench.device.stop_hinting, bench.device.hinting_status):
        with pytest.raises(BalloonError, match="Attempting to use hinting when not enabled"):
            call()


def test_the_state_round_trips(filled_pages, make_bench):
    bench, _ = filled_pages
    bench.queues[2].submit([bench.buffer(stats((4, 1234)))])
    bench.notify(2)
    bench.device.set_target_mib(2)
    state = bench.device.save_state()
    other = make_bench("virtio-balloon", amount_mib=1, deflate_on_oom=True, stats_polling_interval_s=2,
                       free_page_hinting=True, free_page_reporting=True)
    other.device.restore_state(state)
    assert other.device.save_state() == state
    assert other.device.statistics()["free_memory"] == 1234


def test_a_restored_hinting_run_is_over(filled_pages, make_bench):
    bench, _ = filled_pages
    bench.device.start_hinting()
    other = make_bench("virtio-balloon", amount_mib=1, deflate_on_oom=True, stats_polling_interval_s=2,
                       free_page_hinting=True, free_page_reporting=True)
    other.device.restore_state(bench.device.save_state())
    assert other.device.hinting_status()["host_cmd"] == balloon_module.FREE_PAGE_HINT_DONE


def test_a_reset_forgets_statistics_and_hinting(filled_pages):
    bench, _ = filled_pages
    bench.queues[2].submit([bench.buffer(stats((4, 1234)))])
    bench.notify(2)
    bench.device.start_hinting()
    bench.write(spec.STATUS, 0)
    assert bench.device.latest_stats == {}
    assert bench.device.hinting_status() == {"host_cmd": 0, "guest_cmd": None}
    assert config(bench)[1:] == (0, 0)
