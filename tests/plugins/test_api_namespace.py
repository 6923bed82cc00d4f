"""Attaching plugin devices through petard's own API namespace and config-file section, on a
real petard process: validation by the plugin's pydantic model with 400s naming the problem,
placement after Firecracker's devices, overlaps refused at InstanceStart, nothing allowed
after boot, and the Debian guest finding the worked example's PL061."""

from __future__ import annotations

import json

import pytest
from plugin_distributions import write_distribution
from petard_proc import PetardProcess

from petard.core import layout

SENSOR_PLUGIN = """
    from pydantic import BaseModel, ConfigDict, Field

    from petard.core.device import Device
    from petard.core.hookspecs import hookimpl

    class SensorOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        celsius: float = Field(20.0, ge=-40, le=125)

    class Sensor(Device):
        irq_count = 1
        options_model = SensorOptions

        def __init__(self, ctx, *, celsius):
            super().__init__(ctx)
            self.celsius = celsius

    @hookimpl
    def petard_device_types():
        return {"acme-sensor": Sensor}
"""
BOOT_ARGS = "console=ttyS0 reboot=k panic=1"
PL061_PROBED = "PL061 GPIO chip registered"


@pytest.fixture
def vmm(tmp_path, pl061_installed):
    site = tmp_path / "site"
    site.mkdir()
    write_distribution(site, "acme-sensor", "acme", "acme_sensor_plugin", SENSOR_PLUGIN)
    process = PetardProcess(tmp_path, "--backend", "unicorn", env={"PYTHONPATH": str(site)})
    yield process.wait_started()
    process.stop()


def configure_guest(vmm, guest, boot_args=BOOT_ARGS):
    assert vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 256}).status == 204
    assert vmm.api.put("/boot-source", {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                                        "boot_args": boot_args}).status == 204


@pytest.mark.parametrize("path, body, fault", [
    ("/petard/devices/t1", {"type": "acme-heater"},
     "Plugin device error: t1: no plugin provides device type 'acme-heater' (known: acme-sensor, "),
    ("/petard/devices/t1", {"type": "acme-sensor", "options": {"celsius": 300}},
     "Plugin device error: t1: device type 'acme-sensor' of plugin 'acme': invalid options: "
     "celsius: Input should be less than or equal to 125"),
    ("/petard/devices/t1", {"type": "acme-sensor", "options": {"kelvin": 3}},
     "Plugin device error: t1: device type 'acme-sensor' of plugin 'acme': invalid options: "
     "kelvin: Extra inputs are not permitted"),
    ("/petard/devices/t1", {"type": "rtc", "options": {"x": 1}},
     "Plugin device error: t1: device type 'rtc' of plugin 'rtc': invalid options: takes no options, got x"),
    ("/petard/devices/t1", {"type": "acme-sensor", "gsis": [3, 4]},
     "Plugin device error: t1: device type 'acme-sensor' of plugin 'acme' needs 1 GSI(s), got 2"),
    ("/petard/devices/t1", {"type": "acme-sensor", "gsis": [96]},
     "Plugin device error: t1: device type 'acme-sensor' of plugin 'acme': GSI 96 is out of range (0-95)"),
    ("/petard/devices/t1", {"type": "acme-sensor", "address": 0x4000_3800},
     "Plugin device error: t1: device type 'acme-sensor' of plugin 'acme': address 0x40003800 is not "
     "0x1000-aligned"),
    ("/petard/devices/t1", {"type": "acme-sensor", "address": 0x8000_0000},
     "Plugin device error: t1: device type 'acme-sensor' of plugin 'acme': window [0x80000000, 0x80001000) "
     "is outside the device area [0x40000000, 0x70000000)"),
    ("/petard/devices/t1", {"type": "acme-sensor", "options": [1]},
     "An error occurred when deserializing the json body of a request: `options` must be a JSON object."),
    ("/petard/devices/t1", {"type": "acme-sensor", "colour": "red"},
     "An error occurred when deserializing the json body of a request: unknown field `colour`, expected one of "
     "`device_id`, `type`, `address`, `gsis`, `options` at line 1 column 32."),
    ("/petard/devices/t1", {"device_id": "t2", "type": "acme-sensor"},
     "The id from the path does not match the id from the body!"),
    ("/petard/devices/t-1", {"type": "acme-sensor"},
     "API Resource IDs can only contain alphanumeric characters and underscores."),
    ("/petard/gadgets/t1", {"type": "acme-sensor"}, "Invalid request method and/or path: PUT /petard/gadgets/t1."),
])
def test_bad_plugin_devices_get_a_400_naming_the_problem(vmm, path, body, fault):
    reply = vmm.api.put(path, body)
    assert (reply.status, reply.fault[:len(fault)]) == (400, fault)
    assert vmm.api.get("/petard/devices").json() == []


def test_devices_are_listed_and_replaced_by_id(vmm):
    assert vmm.api.put("/petard/devices/t1", {"type": "acme-sensor", "options": {"celsius": 21.5}}).status == 204
    assert vmm.api.put("/petard/devices/t2", {"type": "pl061", "gsis": [9]}).status == 204
    assert vmm.api.put("/petard/devices/t1", {"type": "acme-sensor", "address": 0x4010_0000}).status == 204
    assert vmm.api.get("/petard/devices").json() == [
        {"device_id": "t1", "type": "acme-sensor", "address": 0x4010_0000, "gsis": None, "options": {}},
        {"device_id": "t2", "type": "pl061", "address": None, "gsis": [9], "options": {}},
    ]
    plugins = {plugin["name"]: plugin for plugin in vmm.api.get("/petard/plugins").json()}
    assert plugins["acme"]["version"] == "1.2.3" and plugins["pl061"]["device_types"] == ["pl061"]
    # Upstream's view of the configuration is unchanged by petard's namespace.
    assert "petard" not in vmm.api.get("/vm/config").json()


def test_overlapping_devices_refuse_to_start_naming_both_plugins(vmm, guest):
    configure_guest(vmm, guest)
    assert vmm.api.put("/petard/devices/gpio0", {"type": "pl061", "address": layout.RTC_START}).status == 204
    reply = vmm.api.put("/actions", {"action_type": "InstanceStart"})
    assert reply.status == 400
    assert reply.fault == (
        f"Start microvm error: device 'gpio0' (Pl061) of plugin 'pl061' at [{layout.RTC_START:#x}, "
        f"{layout.RTC_START + layout.MMIO_LEN:#x}) overlaps device 'rtc' (Pl031) of plugin 'rtc' "
        f"at [{layout.RTC_START:#x}, {layout.RTC_START + layout.MMIO_LEN:#x})")
    assert vmm.api.get("/").json()["state"] == "Not started"


def test_guest_finds_the_attached_device_and_it_is_fixed_after_boot(vmm, guest):
    configure_guest(vmm, guest)
    assert vmm.api.put("/petard/devices/gpio0", {"type": "pl061", "options": {"initial_inputs": 1}}).status == 204
    assert vmm.api.put("/actions", {"action_type": "InstanceStart"}).status == 204
    vmm.wait_for_output("PETARD-GUEST-READY", timeout=120)
    # Placed after Firecracker's own devices, in the first free virtio-mmio slot.
    assert f"pl061_gpio {layout.VIRTIO_MMIO_START:x}.gpio: {PL061_PROBED}" in vmm.output
    reply = vmm.api.put("/petard/devices/gpio1", {"type": "pl061"})
    assert (reply.status, reply.fault) == (400, "The requested operation is not supported after starting the microVM.")
    assert [device["device_id"] for device in vmm.api.get("/petard/devices").json()] == ["gpio0"]


def test_config_file_petard_section(tmp_path, guest, pl061_installed):
    config = {
        "boot-source": {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                        "boot_args": BOOT_ARGS + " petard.test=poweroff"},
        "drives": [],
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
        "petard": {"devices": [{"device_id": "gpio0", "type": "pl061", "address": 0x4010_0000,
                                "options": {"line_names": ["led", "", "", "", "", "", "", "button"]}}]},
    }
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(config))
    vmm = PetardProcess(tmp_path, "--backend", "unicorn", "--no-api", "--config-file", str(path), api=False)
    try:
        assert vmm.wait_exit(timeout=120) == 0
        assert f"pl061_gpio 40100000.gpio: {PL061_PROBED}" in vmm.output
        assert "Guest powered off (PSCI SYSTEM_OFF)." in vmm.output
    finally:
        vmm.stop()

    config["petard"]["devices"][0]["options"] = {"line_names": ["led"]}
    path.write_text(json.dumps(config))
    vmm = PetardProcess(tmp_path, "--backend", "unicorn", "--no-api", "--config-file", str(path), api=False)
    try:
        assert vmm.wait_exit(timeout=60) == 1
        assert ("Plugin device error: gpio0: device type 'pl061' of plugin 'pl061': invalid options: "
                "line_names: Value error, needs exactly 8 names (one per pin), got 1") in vmm.output
    finally:
        vmm.stop()
