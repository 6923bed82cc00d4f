"""petard's command line: upstream's flags, exit codes and config-file mode, on real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from petard_proc import PetardProcess


def run_petard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "petard", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_version_flag_matches_api():
    result = run_petard("--version")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "Firecracker v1.17.0-dev"


def test_help_lists_upstream_flags_and_backend():
    result = run_petard("--help")
    assert result.returncode == 0
    for flag in ("--api-sock", "--id", "--config-file", "--no-api", "--log-path", "--level", "--show-level",
                 "--show-log-origin", "--metrics-path", "--boot-timer", "--http-api-max-payload-size",
                 "--mmds-size-limit", "--backend"):
        assert flag in result.stdout


def test_argument_errors_exit_153():
    assert run_petard("--no-api").returncode == 153  # --no-api needs --config-file
    assert run_petard("--bogus-flag").returncode == 153
    assert run_petard("--backend", "qemu").returncode == 153
    result = run_petard("--id", "bad:id")
    assert result.returncode == 153 and "Invalid instance ID" in result.stderr
    assert run_petard("--id", "x" * 65).returncode == 153


def test_bad_log_level_exits_152(tmp_path):
    result = run_petard("--api-sock", str(tmp_path / "s"), "--level", "Loud")
    assert result.returncode == 152
    assert "Invalid value for logger level: Loud" in result.stderr


def test_ignored_flags_warn_once(tmp_path, spawn):
    vmm = spawn("--backend", "unicorn", "--no-seccomp", "--level", "Warning")
    assert vmm.output.count("--no-seccomp is accepted for compatibility") == 1


def test_log_path_level_and_format(tmp_path, spawn):
    log_path = tmp_path / "fc.log"
    vmm = spawn("--backend", "unicorn", "--log-path", str(log_path), "--level", "Debug",
                "--show-level", "--show-log-origin", wait=False)
    for _ in range(300):
        if log_path.exists() and "API server started." in log_path.read_text():
            break
        time.sleep(0.05)
    text = log_path.read_text()
    line = next(line for line in text.splitlines() if line.endswith("API server started."))
    # <time> [<id>:<thread>:<LEVEL>:<file>:<line>] <msg>
    stamp, bracket, _ = line.split(" ", 2)
    assert len(stamp) == len("2024-01-01T00:00:00.000000000") and stamp[10] == "T"
    fields = bracket.strip("[]").split(":")
    assert fields[:3] == ["anonymous-instance", "main", "INFO"] and fields[3].endswith(".py")
    vmm.api.get("/")
    vmm.api.get("/")
    assert any(":DEBUG:" in line and "Total previous API call duration:" in line
               for line in log_path.read_text().splitlines())


def test_config_file_bad_config_exits_1(tmp_path):
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"boot-source": {"kernel_image_path": str(tmp_path / "nope")}, "drives": []}))
    result = run_petard("--no-api", "--config-file", str(config), "--backend", "unicorn")
    assert result.returncode == 1
    assert ("Configuration for VMM from one single json failed: Boot source error: The kernel file cannot be "
            "opened: No such file or directory (os error 2)") in result.stdout
    assert "Firecracker exiting with error. exit_code=1" in result.stdout


def test_config_file_requires_boot_source_and_drives(tmp_path):
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"machine-config": {"vcpu_count": 1, "mem_size_mib": 128}, "drives": []}))
    result = run_petard("--no-api", "--config-file", str(config), "--backend", "unicorn")
    assert result.returncode == 1
    assert "missing field `boot-source`" in result.stdout


def test_config_file_replays_through_the_api_rules(tmp_path):
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\0" * 64)
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(kernel)},
        "drives": [],
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 128, "smt": True},
        "unknown-top-level-key": {"ignored": True},
    }))
    result = run_petard("--no-api", "--config-file", str(config), "--backend", "unicorn")
    assert result.returncode == 1
    assert ("Configuration for VMM from one single json failed: Machine config error: Enabling simultaneous "
            "multithreading is not supported on aarch64.") in result.stdout


def test_config_file_with_api_keeps_serving_after_a_failed_start(tmp_path):
    """With the API enabled a bad config still ends the process, as upstream does."""
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"boot-source": {"kernel_image_path": str(tmp_path / "nope")}, "drives": []}))
    process = PetardProcess(tmp_path, "--backend", "unicorn", "--config-file", str(config))
    try:
        assert process.wait_exit() == 1
        assert "Configuration for VMM from one single json failed" in process.output
    finally:
        process.stop()


def test_metadata_seeds_mmds(tmp_path):
    """--metadata puts its JSON in MMDS before the configuration is applied."""
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"latest": {"meta-data": {"instance-id": "i-1"}}}))
    kernel = tmp_path / "not-a-kernel"
    kernel.write_bytes(b"\0" * 4096)
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"boot-source": {"kernel_image_path": str(kernel)}, "drives": []}))
    result = run_petard("--no-api", "--config-file", str(config), "--metadata", str(metadata),
                        "--backend", "unicorn", "--level", "Debug")
    assert 'The API server received a Put request on "/mmds".' in result.stdout
    # The start comes last, and a file that is not an arm64 Image fails it with a clear message.
    assert "Configuration for VMM from one single json failed: Start microvm error:" in result.stdout
    assert result.returncode == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    result = run_petard("--no-api", "--config-file", str(config), "--metadata", str(bad), "--backend", "unicorn")
    assert result.returncode == 1 and "metadata provided not valid json" in result.stdout
