"""The artifacts really boot: Debian's kernel + our initrd under qemu-system-aarch64 (TCG).

QEMU's virt machine brings its own device tree (PL011 console ttyAMA0), so this
validates the kernel and the initramfs; petard's FDT is validated by dtc here and
by booting on petard's own backends elsewhere.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time

from petard.guest import READY_MARKER, TEST_POWEROFF_ARG

BOOT_TIMEOUT_S = 90


def qemu_command(artifacts, append: str) -> list[str]:
    return [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "256",
        "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
        "-nic", "none",   # the default NIC needs an option ROM that Debian ships only as a recommendation
        "-kernel", str(artifacts.kernel), "-initrd", str(artifacts.initrd), "-append", append,
    ]  # fmt: skip


def test_boots_to_the_marker_and_powers_off(guest_artifacts):
    start = time.monotonic()
    result = subprocess.run(
        qemu_command(guest_artifacts, f"console=ttyAMA0 {TEST_POWEROFF_ARG}"),
        capture_output=True, timeout=BOOT_TIMEOUT_S, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    console = result.stdout.decode(errors="replace")
    assert result.returncode == 0, result.stderr.decode()
    assert READY_MARKER in console
    assert "reboot: Power down" in console.split(READY_MARKER, 1)[1]
    print(f"qemu boot to power-off: {elapsed:.2f} s")


class Console:
    """The guest's serial console on a QEMU process's stdin/stdout."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.text = ""
        self._chunks: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while chunk := self.process.stdout.read1(4096):
            self._chunks.put(chunk)

    def wait_for(self, needle: str, timeout: float = BOOT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{needle!r} not seen; console so far:\n{self.text[-2000:]}"
            try:
                self.text += self._chunks.get(timeout=min(remaining, 1.0)).decode(errors="replace")
            except queue.Empty:
                pass

    def type(self, line: str) -> None:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()


def test_interactive_shell_and_poweroff_from_it(guest_artifacts):
    process = subprocess.Popen(
        qemu_command(guest_artifacts, "console=ttyAMA0 quiet"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        console = Console(process)
        console.wait_for(READY_MARKER)
        console.wait_for("/ # ")
        console.type("echo SHELL-$((6*7)) $(cat /proc/1/comm)")
        console.wait_for("SHELL-42 init")
        console.type("poweroff")
        assert process.wait(timeout=30) == 0
        console.wait_for("reboot: Power down", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
