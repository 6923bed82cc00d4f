"""End to end on KVM: `petard --backend kvm` boots the Debian arm64 guest (kernel and
initramfs from petard.guest, shipped into the emulated host as $PETARD_GUEST_DIR) through
the HTTP API to its userspace marker, the guest powers off (PSCI SYSTEM_OFF) and petard
exits with code 0, with one and with two vCPUs.

Runs inside the emulated aarch64 host (tests/kvm_nested); skipped anywhere without KVM.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from petard.core.backend import Backend

from kvm_testing import expected_gic_version, requires_kvm

GUEST_DIR_ENV = "PETARD_GUEST_DIR"
READY_MARKER = "PETARD-GUEST-READY"          # petard.guest.READY_MARKER
POWEROFF_ARG = "petard.test=poweroff"        # petard.guest.TEST_POWEROFF_ARG
BOOT_ARGS = f"console=ttyS0 reboot=k panic=1 {POWEROFF_ARG}"
# Each console byte is an MMIO exit (~0.2-0.5 ms in the emulated host): the one-vCPU boot
# keeps the kernel quiet; the two-vCPU boot needs the full log to see both CPUs come up.
QUIET = "quiet"
BOOT_TIMEOUT_S = 300
SOCKET_TIMEOUT_S = 60


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=SOCKET_TIMEOUT_S)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def guest_files():
    folder = os.environ.get(GUEST_DIR_ENV)
    if not folder:
        raise unittest.SkipTest(f"${GUEST_DIR_ENV} is not set (the nested builder ships the guest)")
    return Path(folder) / "Image", Path(folder) / "initrd.cpio.gz"


@requires_kvm
class PetardKvmBootTest(unittest.TestCase):
    def boot(self, vcpu_count: int, extra_args=(), boot_args: str = BOOT_ARGS) -> tuple[int, str, float]:
        kernel, initrd = guest_files()
        workdir = Path(tempfile.mkdtemp(prefix="petard-kvm-boot-"))
        sock = workdir / "api.sock"
        output = open(workdir / "petard.out", "wb")
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "petard", "--backend", "kvm", "--api-sock", str(sock), *extra_args],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        try:
            while not sock.exists():
                self.assertIsNone(process.poll(), (workdir / "petard.out").read_text())
                time.sleep(0.05)
            api = UnixHTTPConnection(str(sock))
            for path, body in (
                ("/boot-source", {"kernel_image_path": str(kernel), "initrd_path": str(initrd),
                                  "boot_args": boot_args}),
                ("/machine-config", {"vcpu_count": vcpu_count, "mem_size_mib": 256}),
                ("/actions", {"action_type": "InstanceStart"}),
            ):
                api.request("PUT", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
                reply = api.getresponse()
                text = reply.read().decode()
                self.assertEqual(reply.status, 204, f"PUT {path}: {reply.status} {text}")
            api.close()
            code = process.wait(BOOT_TIMEOUT_S)
        except BaseException as error:
            output.flush()
            raise AssertionError(f"{error!r}; petard's output:\n"
                                 + (workdir / "petard.out").read_text(errors="replace")[-4000:]) from error
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            output.close()
        text = (workdir / "petard.out").read_text(errors="replace")
        seconds = time.monotonic() - started
        print(f"\n  {vcpu_count} vCPU(s): petard exited {code} after {seconds:.1f} s, "
              f"{len(text)} bytes of output", flush=True)
        return code, text, seconds

    def check_common(self, code: int, text: str) -> None:
        tail = text[-4000:]
        self.assertEqual(code, 0, tail)
        self.assertIn(READY_MARKER, text, tail)
        self.assertIn("Received KVM_SYSTEM_EVENT: type: 1, event: [0]", text, tail)
        self.assertIn("reboot: Power down", text, tail)
        for failure in ("Oops", "BUG:", "Kernel panic", "Unable to handle", "Traceback"):
            self.assertNotIn(failure, text, tail)

    def test_boots_to_marker_and_powers_off(self):
        # Without --gic-version the machine gets the host's vGIC (v3, else v2) once core asks
        # the backend before writing the FDT (Backend.gic_version); until then, pass it.
        automatic = hasattr(Backend, "gic_version")
        code, text, _ = self.boot(1, () if automatic else self.gic_args(), f"{BOOT_ARGS} {QUIET}")
        self.check_common(code, text)

    def test_two_vcpus(self):
        code, text, _ = self.boot(2, self.gic_args())
        self.check_common(code, text)
        self.assertIn("smp: Brought up 1 node, 2 CPUs", text, text[-4000:])
        self.assertIn("CPU1: Booted secondary processor", text)
        if expected_gic_version() == 3:
            self.assertIn("GICv3: CPU0: found redistributor 0", text)
            self.assertIn("GICv3: CPU1: found redistributor 1", text)
        else:
            self.assertNotIn("GICv3", text)

    @staticmethod
    def gic_args():
        version = expected_gic_version()
        return ("--gic-version", str(int(version))) if version is not None else ()


if __name__ == "__main__":
    unittest.main()
