"""The KVM backend for real on x86: boot the emulated aarch64 host (qemu-system-aarch64
-M virt,virtualization=on -cpu max,pauth=off) once with gic-version=3 and once with
gic-version=2, and run tests/kvm inside it (ioctl-level tests and `petard --backend kvm`
booting the Debian guest through the HTTP API), then, with pytest, the virtio end-to-end
tests on KVM (tests/virtio/test_e2e.py) and the PL061 example plugin's tests, installed from
its wheel, with PETARD_TEST_BACKEND=kvm (tests/kvm/pytest_in_host.py).

Fails, never skips: a missing tool names the Debian package, a missing /dev/kvm in the
emulated host ends its run with exit code 99. Console logs are kept next to the cached
base image (<petard cache>/kvm-host/console-gicN.log).
"""

import shutil
import time

import pytest

import emulated_host

IN_HOST_COMMAND = "python3.11 tests/kvm/run_in_host.py"
RUN_TIMEOUT_S = 1200
REQUIRED_TOOLS = {
    "qemu-system-aarch64": "qemu-system-arm",
    "aarch64-linux-gnu-as": "binutils-aarch64-linux-gnu",
    "dpkg-deb": "dpkg",
    "mkfs.ext4": "e2fsprogs",
}


@pytest.fixture(scope="module")
def host_initrd(tmp_path_factory):
    missing = [f"{tool} (Debian package {package})" for tool, package in REQUIRED_TOOLS.items()
               if shutil.which(tool) is None]
    assert not missing, f"the nested KVM tests need: {', '.join(missing)}"
    started = time.monotonic()
    initrd = emulated_host.build_initrd(IN_HOST_COMMAND, tmp_path_factory.mktemp("kvm-host") / "initrd.cpio.gz")
    print(f"\nemulated host initrd ready in {time.monotonic() - started:.1f} s")
    return initrd


@pytest.mark.parametrize("gic_version", [3, 2])
def test_kvm_suite_inside_emulated_aarch64_host(host_initrd, gic_version):
    log = emulated_host.work_dir() / f"console-gic{gic_version}.log"
    run = emulated_host.boot(host_initrd, gic_version, RUN_TIMEOUT_S, console_log=log)
    print(f"\ngic-version={gic_version}: emulated host ran {run.seconds:.1f} s (console: {log})")
    tail = "\n".join(run.console.splitlines()[-150:])
    assert run.exit_code != emulated_host.NO_KVM_EXIT_CODE, f"/dev/kvm is absent in the emulated host:\n{tail}"
    assert run.exit_code == 0, f"KVM tests failed inside the emulated host (exit {run.exit_code}):\n{tail}"


def test_missing_dev_kvm_fails_loudly(host_initrd):
    """Without virtualization=on the emulated host has no /dev/kvm: its run must end with
    the dedicated exit code and say why, so a broken set-up can never pass silently."""
    run = emulated_host.boot(host_initrd, 3, RUN_TIMEOUT_S, virtualization=False)
    assert run.exit_code == emulated_host.NO_KVM_EXIT_CODE, run.console[-3000:]
    assert "/dev/kvm is absent" in run.console
