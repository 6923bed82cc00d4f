"""The balloon end to end: a real petard process, the Debian guest's virtio_balloon driver,
the Firecracker API. Inflating takes memory from the guest (MemAvailable) and gives it back
to the host (the process's RSS), deflating returns it; statistics come at the polling
interval and agree with the guest's /proc; with deflate_on_oom an allocation that would
otherwise OOM succeeds, without it the OOM killer runs; a target set while paused is taken
up on resume; free page reporting lowers RSS once the guest frees memory, and so does a free
page hinting run. On Unicorn, and on KVM inside the emulated aarch64 host.

A guest tool (tests/guesttools/memhog.c) fills and frees guest memory. Four boots per
backend: one per balloon configuration whose effects would mix.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import time
from contextlib import contextmanager

import pytest
from guesttools import guest_tool

from petard.guest.rootfs import build_rootfs_image, rootfs_artifacts
from petard.guest.rootfs_scripts import ROOTFS_READY_MARKER

from .petard_vm import PetardVm

pytestmark = pytest.mark.skipif(shutil.which("debugfs") is None, reason="needs e2fsprogs")

BACKENDS = ["unicorn"] + (["kvm"] if platform.machine() == "aarch64" and os.access("/dev/kvm", os.W_OK) else [])
MEM_MIB = 256
INFLATE_MIB = 64
WAIT_S = 120
MIB = 1 << 20


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    guest = rootfs_artifacts()
    image = tmp_path_factory.mktemp("balloon-root") / "root.ext4"
    build_rootfs_image(guest.busybox, image, 32, {"bin/memhog": guest_tool("memhog").read_bytes()})
    return guest, image


def boot(tmp_path, rootfs, backend, balloon) -> PetardVm:
    guest, image = rootfs
    vm = PetardVm(tmp_path, backend, interactive=True)
    try:
        vm.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB})
        vm.put("/boot-source", {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                                "boot_args": "console=ttyS0 reboot=k panic=1 quiet"})
        vm.put("/serial", {"serial_out_path": str(vm.serial)})
        vm.put("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(image), "is_root_device": True,
                                  "is_read_only": True})
        vm.put("/balloon", balloon)
        vm.put("/actions", {"action_type": "InstanceStart"})
        vm.wait_console(ROOTFS_READY_MARKER, WAIT_S)
        vm.run("echo shell-ready")
    except BaseException:
        vm.kill()
        raise
    return vm


@contextmanager
def booted(tmp_path, rootfs, backend, balloon):
    vm = boot(tmp_path, rootfs, backend, balloon)
    try:
        yield vm
    finally:
        vm.kill()


def meminfo(vm: PetardVm) -> dict[str, int]:
    output, _ = vm.run("cat /proc/meminfo")
    return {name: int(value) * 1024 for name, value in re.findall(r"^(\w+):\s+(\d+) kB", output, re.M)}


def vmstat(vm: PetardVm) -> dict[str, int]:
    output, _ = vm.run("cat /proc/vmstat")
    return {name: int(value) for name, value in re.findall(r"^(\w+) (\d+)$", output, re.M)}


def statistics(vm: PetardVm) -> dict[str, int]:
    status, body = vm.request("GET", "/balloon/statistics")
    assert status == 200, body
    return body


def set_target(vm: PetardVm, mib: int, settle: bool = True) -> int:
    """PATCH the target; wait until the driver stops moving toward it; the actual MiB."""
    status, body = vm.patch("/balloon", {"amount_mib": mib})
    assert status == 204, body
    deadline = time.monotonic() + WAIT_S
    last, still = None, 0
    while True:
        actual = statistics(vm)["actual_pages"]
        if actual == mib * 256:
            return mib
        still = still + 1 if actual == last else 0
        if settle and still >= 20:
            return actual // 256
        assert time.monotonic() < deadline, f"the balloon stayed at {actual} pages, target {mib} MiB"
        last = actual
        time.sleep(0.25)


@pytest.fixture(scope="module", params=BACKENDS)
def oom_deflating(request, rootfs, tmp_path_factory):
    """deflate_on_oom and statistics every second."""
    with booted(tmp_path_factory.mktemp("balloon-a"), rootfs, request.param,
                {"amount_mib": 0, "deflate_on_oom": True, "stats_polling_interval_s": 1}) as vm:
        yield vm


def test_inflating_takes_memory_from_the_guest_and_gives_it_to_the_host(oom_deflating):
    vm = oom_deflating
    output, status = vm.run("memhog 160 free")      # host pages behind most of the guest's free memory
    assert status == 0 and "MEMHOG-FREED 160" in output, output
    before, rss_before = meminfo(vm)["MemAvailable"], vm.rss_kib()
    assert set_target(vm, INFLATE_MIB, settle=False) == INFLATE_MIB
    inflated, rss_inflated = meminfo(vm)["MemAvailable"], vm.rss_kib()
    assert before - inflated >= 0.85 * INFLATE_MIB * MIB, (before, inflated)
    assert (rss_before - rss_inflated) * 1024 >= 50 * MIB, (rss_before, rss_inflated)
    status, config = vm.request("GET", "/balloon")
    assert config["amount_mib"] == INFLATE_MIB
    assert set_target(vm, 0, settle=False) == 0
    deflated = meminfo(vm)["MemAvailable"]
    assert deflated >= before - 0.15 * INFLATE_MIB * MIB, (before, deflated)
    status, config = vm.request("GET", "/vm/config")
    assert config["balloon"]["amount_mib"] == 0


def test_a_target_set_while_paused_is_taken_up_on_resume(oom_deflating):
    vm = oom_deflating
    assert vm.patch("/vm", {"state": "Paused"})[0] == 204
    try:
        status, body = vm.patch("/balloon", {"amount_mib": 8})
        assert status == 204, body
        stats = statistics(vm)
        assert (stats["target_mib"], stats["actual_pages"]) == (8, 0)
    finally:
        assert vm.patch("/vm", {"state": "Resumed"})[0] == 204
    assert set_target(vm, 8, settle=False) == 8
    assert set_target(vm, 0, settle=False) == 0


def test_statistics_come_at_the_polling_interval_and_agree_with_the_guest(oom_deflating):
    vm = oom_deflating
    vm.run("(while :; do cat /proc/uptime > /dev/null; done) & echo $! > /run/faulter")
    try:
        changes, last = [], None
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            faults = statistics(vm).get("minor_faults")
            if faults != last and last is not None:
                changes.append(time.monotonic())
            last = faults
            time.sleep(0.05)
    finally:
        vm.run("kill $(cat /run/faulter)")
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    assert len(gaps) >= 3, changes
    assert all(0.5 <= gap <= 2.0 for gap in gaps), gaps
    stats, memory, events = statistics(vm), meminfo(vm), vmstat(vm)
    assert stats["total_memory"] == memory["MemTotal"]
    for key, name in (("free_memory", "MemFree"), ("available_memory", "MemAvailable")):
        assert abs(stats[key] - memory[name]) <= 16 * MIB, (key, stats[key], memory[name])
    assert 0 < stats["minor_faults"] <= events["pgfault"]
    assert stats["major_faults"] <= events["pgmajfault"]
    assert {"target_pages", "actual_pages", "target_mib", "actual_mib", "disk_caches"} <= set(stats)


def test_with_deflate_on_oom_an_allocation_that_would_oom_succeeds(oom_deflating):
    vm = oom_deflating
    available = meminfo(vm)["MemAvailable"] // MIB
    taken = set_target(vm, available - 40)
    assert taken >= available - 60, (available, taken)
    output, status = vm.run("memhog 100 free", timeout=300)
    assert status == 0 and "MEMHOG-TOUCHED 100" in output, output
    assert statistics(vm)["actual_mib"] < taken               # the guest took pages back
    assert "Out of memory" not in vm.console()
    set_target(vm, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_deflate_on_oom_the_oom_killer_runs(rootfs, backend, tmp_path):
    balloon = {"amount_mib": 0, "deflate_on_oom": False, "stats_polling_interval_s": 1}
    with booted(tmp_path, rootfs, backend, balloon) as vm:
        available = meminfo(vm)["MemAvailable"] // MIB
        set_target(vm, available - 40)
        output, status = vm.run("memhog 100 free", timeout=300)
        assert status != 0 and "MEMHOG-TOUCHED" not in output, output
        assert "Out of memory: Killed process" in vm.run("dmesg")[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_free_page_reporting_lowers_rss_after_the_guest_frees_memory(rootfs, backend, tmp_path):
    balloon = {"amount_mib": 0, "deflate_on_oom": False, "free_page_reporting": True}
    with booted(tmp_path, rootfs, backend, balloon) as vm:
        # No statistics and no hinting on this balloon: upstream's refusals.
        for method, path, body, text in (
                ("GET", "/balloon/statistics", None,
                 "Internal VMM error: Balloon: Received stats query when stats are disabled."),
                ("PATCH", "/balloon/statistics", {"stats_polling_interval_s": 1},
                 "Balloon update error: Balloon: Statistics cannot be enabled/disabled after activation."),
                ("PATCH", "/balloon", {"amount_mib": MEM_MIB + 1},
                 f"Balloon update error: Balloon: Requested memory should be less than {MEM_MIB + 1}MiB"),
                ("PATCH", "/balloon/hinting/start", {},
                 "Balloon update error: Balloon: Attempting to use hinting when not enabled")):
            status, reply = vm.request(method, path, body)
            assert (status, reply) == (400, {"fault_message": text}), (path, reply)
        vm.run("memhog 150 hold > /run/hog & echo $! > /run/hog.pid")
        deadline = time.monotonic() + WAIT_S
        while "MEMHOG-TOUCHED" not in vm.run("cat /run/hog")[0]:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        holding = vm.rss_kib()
        vm.run("kill $(cat /run/hog.pid)")
        deadline = time.monotonic() + 60
        while (holding - vm.rss_kib()) * 1024 < 50 * MIB:
            assert time.monotonic() < deadline, (holding, vm.rss_kib())
            time.sleep(0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_free_page_hinting_run_gives_the_guests_free_memory_back(rootfs, backend, tmp_path):
    balloon = {"amount_mib": 0, "deflate_on_oom": False, "free_page_hinting": True}
    with booted(tmp_path, rootfs, backend, balloon) as vm:
        status, reply = vm.request("GET", "/balloon/hinting/status")
        assert (status, reply) == (200, {"host_cmd": 0, "guest_cmd": None})
        output, status = vm.run("memhog 150 free")
        assert status == 0 and "MEMHOG-FREED 150" in output, output
        before = vm.rss_kib()
        status, reply = vm.request("PATCH", "/balloon/hinting/start", {})
        assert status == 204, reply
        deadline = time.monotonic() + WAIT_S
        while (hinting := vm.request("GET", "/balloon/hinting/status")[1])["host_cmd"] != 1:   # DONE: acknowledged
            assert time.monotonic() < deadline, hinting
            time.sleep(0.25)
        assert hinting["guest_cmd"] == 0                                 # the driver said STOP: run over
        assert (before - vm.rss_kib()) * 1024 >= 50 * MIB, (before, vm.rss_kib())
        output, status = vm.run("memhog 150 free")                        # the guest has its memory back
        assert status == 0 and "MEMHOG-FREED 150" in output, output
