"""The Firecracker API before boot, over a real Unix socket to a real petard process.

Expected texts are upstream's (``src/vmm/src/rpc_interface.rs``, ``vmm_config/*.rs``,
``api_server/parsed_request.rs``) and the behaviours those of upstream's ``test_api.py``.
"""

from __future__ import annotations

import os
import stat

BEFORE_START = "The requested operation is not supported before starting the microVM."
DESERIALIZE = "An error occurred when deserializing the json body of a request: "


def test_instance_info_and_version(vmm):
    reply = vmm.api.get("/")
    assert reply.status == 200
    assert reply.headers["server"] == "Firecracker API"
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "id": "anonymous-instance", "state": "Not started",
        "vmm_version": "1.17.0-dev", "app_name": "Firecracker",
    }
    assert vmm.api.get("/version").json() == {"firecracker_version": "1.17.0-dev"}


def test_instance_id_from_cli(spawn):
    vmm = spawn("--backend", "unicorn", "--id", "my-vm-1")
    assert vmm.api.get("/").json()["id"] == "my-vm-1"
    assert "[my-vm-1:main] Running Firecracker v1.17.0-dev" in vmm.output


def test_put_is_204_without_body_and_connection_stays_open(vmm):
    for _ in range(3):
        reply = vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
        assert reply.status == 204
        assert reply.text == ""
        assert "content-type" not in reply.headers
    assert vmm.api.get("/").status == 200  # same connection, still usable


def test_full_vm_config_defaults(vmm):
    assert vmm.api.get("/vm/config").json() == {
        "balloon": None,
        "drives": [],
        "boot-source": {"kernel_image_path": "", "initrd_path": None, "boot_args": None},
        "cpu-config": None,
        "logger": None,
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "smt": False,
                           "track_dirty_pages": False, "huge_pages": "None"},
        "metrics": None,
        "mmds-config": None,
        "network-interfaces": [],
        "vsock": None,
        "entropy": None,
        "pmem": [],
        "memory-hotplug": None,
    }


def test_full_vm_config_reflects_everything_configured(vmm, kernel_file, tmp_path):
    rootfs = tmp_path / "rootfs.ext4"
    rootfs.write_bytes(b"\0" * 1024)
    api = vmm.api
    assert api.put("/machine-config", {"vcpu_count": 2, "mem_size_mib": 256}).status == 204
    assert api.put("/boot-source", {"kernel_image_path": kernel_file, "boot_args": ""}).status == 204
    assert api.put("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(rootfs),
                                      "is_root_device": True, "is_read_only": True,
                                      "io_engine": "Sync"}).status == 204
    assert api.put("/balloon", {"amount_mib": 1, "deflate_on_oom": True}).status == 204
    assert api.put("/vsock", {"guest_cid": 15, "uds_path": "vsock.sock"}).status == 204
    hotplug = {"total_size_mib": 1024, "block_size_mib": 128, "slot_size_mib": 1024}
    assert api.put("/hotplug/memory", hotplug).status == 204
    tx = {"bandwidth": {"size": 1000000, "refill_time": 100, "one_time_burst": None}, "ops": None}
    assert api.put("/network-interfaces/1", {"iface_id": "1", "guest_mac": "06:00:00:00:00:01",
                                             "host_dev_name": "tap1", "tx_rate_limiter": tx}).status == 204
    mmds = {"version": "V2", "ipv4_address": "169.254.169.250", "network_interfaces": ["1"],
            "imds_compat": True}
    assert api.put("/mmds/config", mmds).status == 204
    config = api.get("/vm/config").json()
    assert config["machine-config"] == {"vcpu_count": 2, "mem_size_mib": 256, "smt": False,
                                        "track_dirty_pages": False, "huge_pages": "None"}
    assert config["boot-source"] == {"boot_args": "", "kernel_image_path": kernel_file, "initrd_path": None}
    assert config["drives"] == [{
        "drive_id": "rootfs", "partuuid": None, "is_root_device": True, "cache_type": "Unsafe",
        "is_read_only": True, "path_on_host": str(rootfs), "rate_limiter": None,
        "io_engine": "Sync", "socket": None,
    }]
    assert config["balloon"] == {"amount_mib": 1, "deflate_on_oom": True, "stats_polling_interval_s": 0,
                                 "free_page_hinting": False, "free_page_reporting": False}
    assert config["vsock"] == {"guest_cid": 15, "uds_path": "vsock.sock"}
    assert config["memory-hotplug"] == hotplug
    assert config["network-interfaces"] == [{
        "iface_id": "1", "host_dev_name": "tap1", "guest_mac": "06:00:00:00:00:01", "mtu": None,
        "rx_rate_limiter": None, "tx_rate_limiter": tx,
    }]
    assert config["mmds-config"] == mmds
    assert config["entropy"] is None and config["logger"] is None and config["metrics"] is None


# --- machine-config ------------------------------------------------------------------------


def test_machine_config_round_trip(vmm):
    api = vmm.api
    assert api.put("/machine-config", {"vcpu_count": 4, "mem_size_mib": 256,
                                       "track_dirty_pages": True}).status == 204
    assert api.get("/machine-config").json() == {
        "vcpu_count": 4, "mem_size_mib": 256, "smt": False, "track_dirty_pages": True, "huge_pages": "None"}
    assert api.patch("/machine-config", {"mem_size_mib": 512}).status == 204
    assert api.get("/machine-config").json()["mem_size_mib"] == 512
    assert api.get("/machine-config").json()["vcpu_count"] == 4
    # PUT resets what it leaves out.
    assert api.put("/machine-config", {"vcpu_count": 2, "mem_size_mib": 128}).status == 204
    assert api.get("/machine-config").json()["track_dirty_pages"] is False


def test_machine_config_missing_fields_name_serde_position(vmm):
    reply = vmm.api.put("/machine-config", {"mem_size_mib": 128})
    assert reply.status == 400
    assert reply.fault == DESERIALIZE + "missing field `vcpu_count` at line 1 column 21."
    reply = vmm.api.put("/machine-config", {"vcpu_count": 2})
    assert reply.fault == DESERIALIZE + "missing field `mem_size_mib` at line 1 column 17."


def test_machine_config_type_errors(vmm):
    reply = vmm.api.put("/machine-config", {"vcpu_count": "-2", "mem_size_mib": 128})
    assert reply.fault == DESERIALIZE + 'invalid type: string "-2", expected u8 at line 1 column 19.'
    reply = vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128, "smt": "yes"})
    assert reply.fault.startswith(DESERIALIZE + 'invalid type: string "yes", expected a boolean')
    reply = vmm.api.put("/machine-config", {"vcpu_count": 300, "mem_size_mib": 128})
    assert reply.fault.startswith(DESERIALIZE + "invalid value: integer `300`, expected u8")


def test_machine_config_rules(vmm):
    api = vmm.api
    assert api.put("/machine-config", {"vcpu_count": 2, "mem_size_mib": 128, "smt": True}).fault == (
        "Machine config error: Enabling simultaneous multithreading is not supported on aarch64.")
    assert api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 0}).fault == (
        "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.")
    for count in (0, 33):
        assert api.put("/machine-config", {"vcpu_count": count, "mem_size_mib": 128}).fault == (
            "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must "
            "be 1 or an even number if SMT is enabled.")
    assert api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 129, "huge_pages": "2M"}).status == 400
    assert api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128, "huge_pages": "2M"}).status == 204


def test_machine_config_null_smt_rejected_by_put_accepted_by_patch(vmm):
    reply = vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128, "smt": None})
    assert reply.fault.startswith(DESERIALIZE + "invalid type: null, expected a boolean")
    assert vmm.api.patch("/machine-config", {"smt": None, "vcpu_count": 2}).status == 204


def test_machine_config_empty_patch(vmm):
    assert vmm.api.patch("/machine-config", {}).fault == "Empty PATCH request."


def test_cpu_template_is_deprecated(vmm):
    reply = vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "V1N1"})
    assert reply.status == 204
    assert reply.headers["deprecation"] == "true"
    vmm.wait_for_output("PUT /machine-config: cpu_template field is deprecated.")
    assert vmm.api.get("/machine-config").json()["cpu_template"] == "V1N1"
    assert "deprecation" not in vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128}).headers


# --- boot source and drives ----------------------------------------------------------------


def test_boot_source_file_checks(vmm, kernel_file, tmp_path):
    reply = vmm.api.put("/boot-source", {"kernel_image_path": str(tmp_path / "nope")})
    assert reply.fault == "Boot source error: The kernel file cannot be opened: No such file or directory (os error 2)"
    reply = vmm.api.put("/boot-source", {"kernel_image_path": kernel_file, "initrd_path": str(tmp_path / "nope")})
    assert reply.fault == ("Boot source error: The initrd file cannot be opened due to invalid path or "
                           "invalid permissions. No such file or directory (os error 2)")
    assert vmm.api.put("/boot-source", {"kernel_image_path": kernel_file, "initrd_path": None,
                                        "boot_args": None}).status == 204
    reply = vmm.api.put("/boot-source", {"kernel_image_path": kernel_file, "boot_args": "a" * 2048})
    assert reply.fault == "Boot source error: The kernel command line is invalid: Invalid cmdline capacity provided."


def test_drive_rules(vmm, tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 512)
    api = vmm.api
    reply = api.put("/drives/root", {"drive_id": "root", "path_on_host": str(tmp_path / "nope"),
                                     "is_root_device": True})
    assert reply.status == 400 and "No such file or directory (os error 2)" in reply.fault
    # Real clients send explicit nulls for Option fields.
    assert api.put("/drives/data", {"drive_id": "data", "path_on_host": str(image), "is_root_device": False,
                                    "partuuid": None, "is_read_only": None, "rate_limiter": None,
                                    "io_engine": None, "socket": None, "cache_type": "Writeback"}).status == 204
    assert api.put("/drives/root", {"drive_id": "root", "path_on_host": str(image),
                                    "is_root_device": True}).status == 204
    assert api.put("/drives/root2", {"drive_id": "root2", "path_on_host": str(image),
                                     "is_root_device": True}).fault == "Drive config error: A root block device already exists!"
    drives = api.get("/vm/config").json()["drives"]
    assert [drive["drive_id"] for drive in drives] == ["root", "data"]  # root first
    assert drives[1]["cache_type"] == "Writeback"


def test_drive_ids(vmm, tmp_path):
    body = {"drive_id": "a", "path_on_host": "/dev/null", "is_root_device": False}
    assert vmm.api.put("/drives/b", body).fault == "The id from the path does not match the id from the body!"
    assert vmm.api.put("/drives/", body).fault == "The ID cannot be empty."
    assert vmm.api.put("/drives/a-b", body).fault == (
        "API Resource IDs can only contain alphanumeric characters and underscores.")
    reply = vmm.api.put("/drives/a", {**body, "cache_type": None})
    assert reply.fault.startswith(DESERIALIZE + "invalid type: null")


def test_patch_before_start_is_refused(vmm):
    for path, body in (("/drives/a", {"drive_id": "a"}),
                       ("/network-interfaces/a", {"iface_id": "a"}),
                       ("/pmem/a", {"id": "a"}),
                       ("/balloon", {"amount_mib": 1}),
                       ("/vm", {"state": "Paused"}),
                       ("/hotplug/memory", {"requested_size_mib": 1})):
        assert vmm.api.patch(path, body).fault == BEFORE_START, path


def test_patch_drive_unknown_fields(vmm):
    reply = vmm.api.patch("/drives/a", {"drive_id": "a", "is_read_only": True})
    assert reply.fault == DESERIALIZE + (
        "unknown field `is_read_only`, expected one of `drive_id`, `path_on_host`, `rate_limiter` "
        "at line 1 column 32.")


# --- request parsing -----------------------------------------------------------------------


def test_unknown_paths_and_methods(vmm):
    assert vmm.api.patch("/boot-source", {}).fault == "Invalid request method and/or path: PATCH boot-source."
    assert vmm.api.patch("/logger", {}).fault == "Invalid request method and/or path: PATCH logger."
    assert vmm.api.get("/nope").fault == "Invalid request method and/or path: GET nope."
    assert vmm.api.request("DELETE", "/boot-source").fault == "Invalid request method and/or path: DELETE boot-source."
    assert vmm.api.put("/boot-source").fault == "Empty PUT request."
    assert vmm.api.patch("/machine-config").fault == "Empty PATCH request."
    assert vmm.api.request("GET", "/", raw="{}").fault == "GET request cannot have a body."


def test_body_syntax_errors(vmm):
    assert vmm.api.put("/machine-config", raw="{").fault == DESERIALIZE + "EOF while parsing an object at line 1 column 1."
    assert vmm.api.put("/machine-config", raw='{"vcpu_count": 1,}').fault.startswith(DESERIALIZE + "trailing comma")
    assert vmm.api.put("/actions", {"action_type": "Boom"}).fault == DESERIALIZE + (
        "unknown variant `Boom`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel` "
        "at line 1 column 22.")


def test_payload_limit(spawn):
    vmm = spawn("--backend", "unicorn", "--http-api-max-payload-size", "250")
    reply = vmm.api.put("/mmds", {"key": "x" * 300})
    assert reply.status == 400
    assert reply.json() == {"error": "Request payload with size 311 is larger than the limit of 250 allowed "
                                     "by server.\nAll previous unanswered requests will be dropped."}


def test_actions_before_start(vmm):
    assert vmm.api.put("/actions", {"action_type": "SendCtrlAltDel"}).fault == "SendCtrlAltDel does not supported on aarch64."
    assert vmm.api.put("/actions", {"action_type": "FlushMetrics"}).fault == BEFORE_START
    assert vmm.api.put("/actions", {"action_type": "InstanceStart"}).fault == (
        "Start microvm error: Cannot start microvm without kernel configuration.")
    assert vmm.api.put("/snapshot/create", {"snapshot_path": "s", "mem_file_path": "m"}).fault == BEFORE_START


def test_start_refuses_devices_petard_cannot_build_yet(vmm, kernel_file):
    assert vmm.api.put("/boot-source", {"kernel_image_path": kernel_file}).status == 204
    assert vmm.api.put("/vsock", {"guest_cid": 3, "uds_path": "v.sock"}).status == 204
    hotplug = {"total_size_mib": 1024, "block_size_mib": 128, "slot_size_mib": 1024}
    assert vmm.api.put("/hotplug/memory", hotplug).status == 204
    reply = vmm.api.put("/actions", {"action_type": "InstanceStart"})
    assert reply.status == 400
    assert "vsock" in reply.fault and "memory-hotplug" in reply.fault
    assert vmm.api.get("/").json()["state"] == "Not started"


# --- other devices and services ------------------------------------------------------------


def test_mmds_data(vmm):
    assert vmm.api.get("/mmds").json() == {}
    assert vmm.api.put("/mmds", {"latest": {"meta-data": {"ami-id": "ami-1"}}}).status == 204
    assert vmm.api.patch("/mmds", {"latest": {"meta-data": {"ami-id": None, "host": "h"}}}).status == 204
    assert vmm.api.get("/mmds").json() == {"latest": {"meta-data": {"host": "h"}}}


def test_mmds_size_limit(spawn):
    vmm = spawn("--backend", "unicorn", "--mmds-size-limit", "64")
    reply = vmm.api.put("/mmds", {"key": "x" * 100})
    assert reply.status == 413
    assert reply.fault == "MMDS limit exceeded error: The MMDS patch request doesn't fit."


def test_mmds_config_rules(vmm):
    assert vmm.api.put("/mmds/config", {"network_interfaces": []}).fault == (
        "MMMDS config error: The list of network interface IDs that allow forwarding MMDS requests is empty.")
    assert vmm.api.put("/mmds/config", {"network_interfaces": ["foo"]}).fault.startswith(
        "MMMDS config error: The list of network interface IDs provided contains at least one ID")
    reply = vmm.api.put("/mmds/config", {"network_interfaces": ["foo"], "version": "foo"})
    assert "unknown variant `foo`, expected `V1` or `V2`" in reply.fault
    assert vmm.api.put("/network-interfaces/1", {"iface_id": "1", "host_dev_name": "tap0"}).status == 204
    reply = vmm.api.put("/mmds/config", {"network_interfaces": ["1"]})
    assert reply.status == 204 and reply.headers["deprecation"] == "true"  # V1 is deprecated
    assert vmm.api.get("/vm/config").json()["mmds-config"] == {
        "version": "V1", "network_interfaces": ["1"], "ipv4_address": "169.254.169.254", "imds_compat": False}


def test_network_interface_rules(vmm):
    iface = {"iface_id": "1", "host_dev_name": "tap1", "guest_mac": "06:00:00:00:00:01"}
    assert vmm.api.put("/network-interfaces/1", iface).status == 204
    assert vmm.api.put("/network-interfaces/1", iface).status == 204  # re-PUT replaces
    reply = vmm.api.put("/network-interfaces/2", {**iface, "iface_id": "2", "host_dev_name": "tap2"})
    assert reply.fault == "Network config error: The MAC address is already in use: 06:00:00:00:00:01"
    reply = vmm.api.put("/network-interfaces/3", {**iface, "iface_id": "3", "guest_mac": "nope"})
    assert "The provided MAC address is invalid." in reply.fault


def test_vsock_entropy_balloon_hotplug(vmm):
    api = vmm.api
    assert api.put("/vsock", {"guest_cid": 3, "uds_path": "v.sock"}).status == 204
    reply = api.put("/vsock", {"vsock_id": "x", "guest_cid": 4, "uds_path": "v.sock"})
    assert reply.status == 204 and reply.headers["deprecation"] == "true"
    assert api.put("/entropy", {}).status == 204 and api.put("/entropy", {}).status == 204
    assert api.get("/balloon").fault == "Balloon config error: No balloon device found."
    assert api.put("/balloon", {"amount_mib": 512, "deflate_on_oom": True}).fault == (
        "Balloon config error: Amount of pages requested is too large.")
    assert api.put("/balloon", {"amount_mib": 16, "deflate_on_oom": False}).status == 204
    assert api.get("/balloon").json()["amount_mib"] == 16
    assert api.put("/hotplug/memory", {"total_size_mib": 1024}).status == 204
    assert api.get("/hotplug/memory").fault == BEFORE_START


def test_memory_hotplug_config_is_checked_as_upstream_does(vmm):
    prefix = "Memory hotplug config error: "
    for config, problem in (
            ({"total_size_mib": 1024, "block_size_mib": 1}, "Block size must not be lower than 2 MiB"),
            ({"total_size_mib": 1024, "block_size_mib": 3}, "Block size must be a power of 2"),
            ({"total_size_mib": 1024, "slot_size_mib": 64}, "Slot size must not be lower than 128 MiB"),
            ({"total_size_mib": 1024, "block_size_mib": 256, "slot_size_mib": 384},
             "Slot size must be a multiple of block size (256 MiB)"),
            ({"total_size_mib": 64}, "Total size must not be lower than slot size (128 MiB)"),
            ({"total_size_mib": 200}, "Total size must be a multiple of slot size (128 MiB)")):
        assert vmm.api.put("/hotplug/memory", config).fault == prefix + problem, config
    assert vmm.api.get("/vm/config").json()["memory-hotplug"] is None      # nothing kept
    assert vmm.api.put("/hotplug/memory", {"total_size_mib": 256}).status == 204


def test_rate_limiters_accepted_everywhere(vmm):
    bucket = {"size": 1000, "refill_time": 100}
    limiter = {"bandwidth": bucket, "ops": {**bucket, "one_time_burst": 10}}
    assert vmm.api.put("/drives/d", {"drive_id": "d", "path_on_host": "/dev/null", "is_root_device": False,
                                     "rate_limiter": limiter}).status == 204
    assert vmm.api.put("/drives/e", {"drive_id": "e", "path_on_host": "/dev/null", "is_root_device": False,
                                     "rate_limiter": {}}).status == 204
    assert vmm.api.put("/entropy", {"rate_limiter": limiter}).status == 204
    assert vmm.api.put("/network-interfaces/n", {"iface_id": "n", "host_dev_name": "t",
                                                 "rx_rate_limiter": limiter, "tx_rate_limiter": {}}).status == 204


def test_snapshot_load_argument_rules(vmm):
    reply = vmm.api.put("/snapshot/load", {"snapshot_path": "s"})
    assert reply.fault == DESERIALIZE + "missing field: either `mem_backend` or `mem_file_path` is required."
    reply = vmm.api.put("/snapshot/load", {"snapshot_path": "s", "mem_file_path": "m",
                                           "mem_backend": {"backend_type": "File", "backend_path": "m"}})
    assert reply.fault == DESERIALIZE + (
        "too many fields: either `mem_backend` or `mem_file_path` exclusively is required.")
    reply = vmm.api.put("/snapshot/load", {"snapshot_path": "s",
                                           "mem_backend": {"backend_type": "foo", "backend_path": "m"}})
    assert "unknown variant `foo`, expected `File` or `Uffd`" in reply.fault
    assert vmm.api.put("/snapshot/other", {}).fault == "Invalid request method and/or path: PUT /snapshot/other."


def test_snapshot_load_after_boot_resources(vmm, kernel_file):
    assert vmm.api.put("/boot-source", {"kernel_image_path": kernel_file}).status == 204
    reply = vmm.api.put("/snapshot/load", {"snapshot_path": "s", "mem_file_path": "m"})
    assert reply.fault == ("Load snapshot error: Loading a microVM snapshot not allowed after configuring "
                           "boot-specific resources.")
    assert reply.headers["deprecation"] == "true"


def test_cpu_config(vmm):
    template = {"kvm_capabilities": ["!121"], "vcpu_features": [{"index": 0, "bitmap": "0b1100000"}],
                "reg_modifiers": [{"addr": "0x603000000013c020", "bitmap": "0bxxxxxxxxxxxx0000xxxxxxxxxxxx0000"}]}
    assert vmm.api.put("/cpu-config", template).status == 204
    assert vmm.api.put("/cpu-config", {"foo": 1}).fault.startswith(DESERIALIZE + "unknown field `foo`")


# --- logging, metrics, socket --------------------------------------------------------------


def test_request_log_lines(vmm):
    vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
    vmm.wait_for_output('The API server received a Put request on "/machine-config" with body '
                        '"{\\"vcpu_count\\": 1, \\"mem_size_mib\\": 128}".')
    vmm.wait_for_output("The request was executed successfully. Status code: 204 No Content.")


def test_logger_put(vmm, tmp_path):
    log_path = tmp_path / "fc.log"
    log_path.touch()
    assert vmm.api.put("/logger", {"log_path": str(log_path), "level": "Debug", "show_level": True,
                                   "show_log_origin": True}).status == 204
    vmm.api.get("/")
    text = log_path.read_text()
    assert ':INFO:' in text and 'The API server received a Get request on "/".' in text
    assert ".py:" in text  # origin shown
    assert vmm.api.put("/logger", {"level": "blah"}).status == 400


def test_metrics_flushed_at_exit(spawn, tmp_path):
    import json
    import signal

    metrics_path = tmp_path / "metrics.ndjson"
    vmm = spawn("--backend", "unicorn", "--metrics-path", str(metrics_path))
    vmm.api.get("/")
    vmm.api.put("/boot-source", {"kernel_image_path": str(tmp_path / "nope")})
    vmm.process.send_signal(signal.SIGTERM)
    assert vmm.wait_exit() == 0
    lines = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    assert lines, "no metrics line written"
    # Counters report what happened since the previous flush: their sum is the total.
    total = sum(line["get_api_requests"]["instance_info_count"] for line in lines)
    assert total == 2  # the fixture's readiness probe and ours
    assert sum(line["put_api_requests"]["boot_source_fails"] for line in lines) == 1
    assert lines[-1]["api_server"]["process_startup_time_us"] > 0


def test_metrics_put_once(vmm, tmp_path):
    path = tmp_path / "m.ndjson"
    assert vmm.api.put("/metrics", {"metrics_path": str(path)}).status == 204
    assert vmm.api.put("/metrics", {"metrics_path": str(path)}).status == 400


def test_socket_mode_and_stale_socket(spawn, tmp_path):
    import socket as socketlib

    stale = socketlib.socket(socketlib.AF_UNIX)
    stale.bind(str(tmp_path / "fc.sock"))
    stale.close()  # a socket file nobody listens on
    vmm = spawn("--backend", "unicorn")
    mode = os.stat(vmm.socket_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert vmm.api.get("/").status == 200


def test_socket_in_use(spawn, tmp_path):
    first = spawn("--backend", "unicorn")
    second = spawn("--backend", "unicorn", wait=False)
    assert second.wait_exit() == 1
    assert f"Failed to open the API socket at: {first.socket_path}. Check that it is not already used." in second.output
    assert "Firecracker exiting with error. exit_code=1" in second.output
    assert first.api.get("/").status == 200
