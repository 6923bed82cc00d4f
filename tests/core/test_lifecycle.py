"""Which action is legal in which phase, and the controller's state changes.

The post-boot half uses an in-process controller whose machine starter returns a stand-in
for a booted guest (it records pause/resume), so the legality rules are tested on their
own; booting real guests through the API is covered by the backend tests.
"""

from __future__ import annotations

import pytest

from petard.api.dispatch import Dispatcher
from petard.core import faults
from petard.core.controller import Controller
from petard.core.lifecycle import (BOTH_PHASES, POST_BOOT_ONLY, PRE_BOOT_ONLY, Action, LifecyclePhase,
                                   check_allowed)
from petard.core.logger import VmmLogger
from petard.core.metrics import Metrics

AFTER_START = "The requested operation is not supported after starting the microVM."
BEFORE_START = "The requested operation is not supported before starting the microVM."


def test_every_action_has_exactly_one_legality_class():
    assert PRE_BOOT_ONLY | POST_BOOT_ONLY | BOTH_PHASES == set(Action)
    assert not (PRE_BOOT_ONLY & POST_BOOT_ONLY)
    assert not (PRE_BOOT_ONLY & BOTH_PHASES) and not (POST_BOOT_ONLY & BOTH_PHASES)


@pytest.mark.parametrize("action", sorted(Action, key=lambda a: a.value))
def test_legality_table(action):
    for phase in (LifecyclePhase.UNINITIALIZED, LifecyclePhase.NOT_STARTED):
        if action in POST_BOOT_ONLY:
            with pytest.raises(faults.VmmActionError, match=BEFORE_START):
                check_allowed(phase, action)
        else:
            check_allowed(phase, action)
    for phase in (LifecyclePhase.RUNNING, LifecyclePhase.PAUSED):
        if action in PRE_BOOT_ONLY:
            with pytest.raises(faults.VmmActionError, match=AFTER_START):
                check_allowed(phase, action)
        else:
            check_allowed(phase, action)


class StandInMachine:
    def __init__(self):
        self.calls: list[str] = []

    def pause(self):
        self.calls.append("pause")

    def resume(self):
        self.calls.append("resume")

    def stop(self):
        self.calls.append("stop")


@pytest.fixture
def booted(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\0" * 64)
    machines: list[StandInMachine] = []
    exits = []

    def starter(resources, on_exit):
        machines.append(StandInMachine())
        exits.append(on_exit)
        return machines[-1]

    controller = Controller(instance_id="t", vmm_version="1.17.0-dev", starter=starter,
                            vmm_logger=VmmLogger(), metrics=Metrics(), mmds_size_limit=51200)
    dispatcher = Dispatcher(controller)
    assert dispatcher.dispatch("PUT", "/boot-source", f'{{"kernel_image_path": "{kernel}"}}').status == 204
    assert dispatcher.dispatch("GET", "/", None).body["state"] == "Not started"
    assert dispatcher.dispatch("PUT", "/actions", '{"action_type": "InstanceStart"}').status == 204
    return dispatcher, machines[0], exits[0], kernel


def test_post_boot_rejections(booted):
    dispatcher, _, _, kernel = booted
    assert dispatcher.dispatch("GET", "/", None).body["state"] == "Running"
    for method, path, body in (
        ("PUT", "/boot-source", f'{{"kernel_image_path": "{kernel}"}}'),
        ("PATCH", "/machine-config", '{"vcpu_count": 4}'),
        ("PUT", "/machine-config", '{"vcpu_count": 4, "mem_size_mib": 128}'),
        ("PUT", "/mmds/config", '{"network_interfaces": ["1"]}'),
        ("PUT", "/vsock", '{"guest_cid": 3, "uds_path": "v"}'),
        ("PUT", "/entropy", '{}'),
        ("PUT", "/actions", '{"action_type": "InstanceStart"}'),
        ("PUT", "/logger", '{"level": "Info"}'),
        ("PUT", "/hotplug/memory", '{"total_size_mib": 1024}'),
    ):
        reply = dispatcher.dispatch(method, path, body)
        assert reply.status == 400 and reply.body["fault_message"] == AFTER_START, path
    reply = dispatcher.dispatch("PUT", "/drives/d", '{"drive_id": "d", "is_root_device": false}')
    assert reply.body["fault_message"] == "PCI is not enabled"
    assert dispatcher.dispatch("GET", "/vm/config", None).status == 200
    assert dispatcher.dispatch("GET", "/version", None).body == {"firecracker_version": "1.17.0-dev"}
    assert dispatcher.dispatch("PUT", "/actions", '{"action_type": "FlushMetrics"}').status == 204


def test_pause_resume_idempotent(booted):
    dispatcher, machine, _, _ = booted
    for _ in range(2):
        assert dispatcher.dispatch("PATCH", "/vm", '{"state": "Paused"}').status == 204
        assert dispatcher.dispatch("GET", "/", None).body["state"] == "Paused"
    for _ in range(2):
        assert dispatcher.dispatch("PATCH", "/vm", '{"state": "Resumed"}').status == 204
        assert dispatcher.dispatch("GET", "/", None).body["state"] == "Running"
    assert machine.calls == ["pause", "resume"]


def test_machine_exit_ends_the_lifecycle(booted):
    dispatcher, _, on_exit, _ = booted
    controller = dispatcher.controller
    on_exit(0)
    assert controller.wait_for_exit(5) == 0
    assert controller.phase is LifecyclePhase.SHUTDOWN
    reply = dispatcher.dispatch("PATCH", "/vm", '{"state": "Paused"}')
    assert reply.status == 400


def test_failed_start_can_be_retried(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\0" * 64)
    attempts = []

    def starter(resources, on_exit):
        attempts.append(resources.machine.vcpu_count)
        if len(attempts) == 1:
            raise faults.VmmActionError(faults.start_error("first try fails"))
        return StandInMachine()

    controller = Controller(instance_id="t", vmm_version="v", starter=starter, vmm_logger=VmmLogger(),
                            metrics=Metrics(), mmds_size_limit=100)
    dispatcher = Dispatcher(controller)
    dispatcher.dispatch("PUT", "/boot-source", f'{{"kernel_image_path": "{kernel}"}}')
    reply = dispatcher.dispatch("PUT", "/actions", '{"action_type": "InstanceStart"}')
    assert reply.body["fault_message"] == "Start microvm error: first try fails"
    assert controller.phase is LifecyclePhase.NOT_STARTED
    assert dispatcher.dispatch("PUT", "/machine-config", '{"vcpu_count": 2, "mem_size_mib": 64}').status == 204
    assert dispatcher.dispatch("PUT", "/actions", '{"action_type": "InstanceStart"}').status == 204
    assert attempts == [1, 2]


def test_reads_do_not_wait_behind_a_long_action(tmp_path):
    """GET / and /vm/config answer while InstanceStart is still busy in the owner thread."""
    import threading

    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\0" * 64)
    release = threading.Event()

    def slow_starter(resources, on_exit):
        release.wait(10)
        return StandInMachine()

    controller = Controller(instance_id="t", vmm_version="v", starter=slow_starter, vmm_logger=VmmLogger(),
                            metrics=Metrics(), mmds_size_limit=100)
    dispatcher = Dispatcher(controller)
    dispatcher.dispatch("PUT", "/boot-source", f'{{"kernel_image_path": "{kernel}"}}')
    start = threading.Thread(target=dispatcher.dispatch, args=("PUT", "/actions", '{"action_type": "InstanceStart"}'))
    start.start()
    try:
        for _ in range(100):
            if controller.phase is LifecyclePhase.STARTING:
                break
            threading.Event().wait(0.01)
        assert controller.phase is LifecyclePhase.STARTING
        assert dispatcher.dispatch("GET", "/", None).body["state"] == "Not started"
        assert dispatcher.dispatch("GET", "/vm/config", None).status == 200
        assert dispatcher.dispatch("GET", "/version", None).status == 200
    finally:
        release.set()
        start.join(10)
    assert controller.phase is LifecyclePhase.RUNNING
