"""Boot the real Debian guest on the Unicorn backend through the HTTP API, as a Firecracker user would."""

from __future__ import annotations

import os
import re
import time

import pytest

MARKER = "PETARD-GUEST-READY"


def configure(vmm, guest, boot_args: str, mem_size_mib: int = 256) -> None:
    assert vmm.api.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": mem_size_mib}).status == 204
    assert vmm.api.put("/boot-source", {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                                        "boot_args": boot_args}).status == 204


@pytest.mark.parametrize("gic_version", ["3", "2"])
def test_boot_to_userspace_and_power_off(spawn, guest, gic_version):
    vmm = spawn("--backend", "unicorn", "--gic-version", gic_version, "--boot-timer")
    configure(vmm, guest, "console=ttyS0 reboot=k panic=1 petard.test=poweroff")
    assert vmm.api.put("/actions", {"action_type": "InstanceStart"}).status == 204
    assert vmm.api.get("/").json()["state"] == "Running"
    assert vmm.wait_exit(timeout=120) == 0
    output = vmm.output
    assert MARKER in output
    assert "Root IRQ handler: gic_handle_irq" in output
    assert ("GICv3: CPU0: found redistributor 0" in output) == (gic_version == "3")
    assert "ttyS0 at MMIO 0x40002000" in output and "is a 16550A" in output
    assert "Guest powered off (PSCI SYSTEM_OFF)." in output
    assert "Vmm is stopping." in output
    assert "Firecracker exiting successfully. exit_code=0" in output


def test_serial_out_path_and_boot_timer(spawn, guest, tmp_path):
    console = tmp_path / "console.log"
    vmm = spawn("--backend", "unicorn", "--boot-timer")
    assert vmm.api.put("/serial", {"serial_out_path": str(console)}).status == 204
    configure(vmm, guest, "console=ttyS0 reboot=k panic=1 petard.test=poweroff")
    assert vmm.api.put("/actions", {"action_type": "InstanceStart"}).status == 204
    assert vmm.wait_exit(timeout=120) == 0
    assert MARKER in console.read_text(errors="replace")
    assert MARKER not in vmm.output  # the console went to the file, not to stdout


def test_interactive_console_rtc_pause_resume_boot_timer_reboot(spawn, guest, tmp_path):
    """Guest input through a FIFO on stdin (as upstream: only a tty or FIFO feeds the guest)."""
    fifo = tmp_path / "console.in"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY)
    try:
        vmm = spawn("--backend", "unicorn", "--boot-timer", stdin=reader)
        os.close(reader)
        configure(vmm, guest, "console=ttyS0 reboot=k panic=1")
        assert vmm.api.put("/actions", {"action_type": "InstanceStart"}).status == 204
        vmm.wait_for_output(MARKER, timeout=120)
        assert "rtc-pl031 40001000.rtc: registered as rtc0" in vmm.output
        # No balloon configured: after boot upstream answers from its device manager.
        assert vmm.api.get("/balloon").fault == "Internal VMM error: Failed perform action on device: Device not found"
        assert vmm.api.patch("/balloon", {"amount_mib": 1}).fault == (
            "Balloon update error: Failed perform action on device: Device not found")

        os.write(writer, b"echo GUEST-TIME=$(date +%s)\n")
        vmm.wait_for_output("GUEST-TIME=1", timeout=60)
        guest_time = int(re.search(r"GUEST-TIME=(\d+)", vmm.output).group(1))
        assert abs(guest_time - time.time()) < 10  # the PL031 gives the guest the host's wall clock

        assert vmm.api.patch("/vm", {"state": "Paused"}).status == 204
        assert vmm.api.get("/").json()["state"] == "Paused"
        os.write(writer, b"echo AFTER-$((40+2))\n")
        time.sleep(1.5)
        assert "AFTER-42" not in vmm.output  # a paused guest runs nothing
        assert vmm.api.patch("/vm", {"state": "Resumed"}).status == 204
        assert vmm.api.get("/").json()["state"] == "Running"
        vmm.wait_for_output("AFTER-42", timeout=60)

        # The boot-timer device: the guest writes 123 at 0x4000_0000, petard logs upstream's line.
        os.write(writer, b"devmem 0x40000000 8 123\n")
        vmm.wait_for_output("Guest-boot-time = ", timeout=60)

        # A guest reboot ends the process like a power-off, as upstream.
        os.write(writer, b"reboot\n")
        assert vmm.wait_exit(timeout=60) == 0
        assert "Guest requested a reset (PSCI SYSTEM_RESET)" in vmm.output
    finally:
        os.close(writer)


def test_not_an_arm64_image_is_a_clear_400(spawn, tmp_path):
    kernel = tmp_path / "vmlinux.elf"
    kernel.write_bytes(b"\x7fELF" + b"\0" * 4092)
    vmm = spawn("--backend", "unicorn")
    assert vmm.api.put("/boot-source", {"kernel_image_path": str(kernel)}).status == 204
    reply = vmm.api.put("/actions", {"action_type": "InstanceStart"})
    assert reply.status == 400
    assert reply.fault.startswith("Start microvm error: ") and "arm64 Image" in reply.fault
    assert vmm.api.get("/").json()["state"] == "Not started"


def test_kvm_backend_on_this_host_says_what_to_do(spawn, guest):
    if os.uname().machine == "aarch64" and os.path.exists("/dev/kvm"):
        pytest.skip("this host has KVM for aarch64")
    vmm = spawn("--backend", "kvm")
    configure(vmm, guest, "console=ttyS0")
    reply = vmm.api.put("/actions", {"action_type": "InstanceStart"})
    assert reply.status == 400 and "--backend unicorn" in reply.fault
