"""SMP guests on the Unicorn backend, end to end through the HTTP API.

The real Debian guest boots with 2 and 4 vCPUs on GICv3 and GICv2 and runs a test init
(added to the initramfs as a second cpio archive, see petard.guest.overlay) that:
  * reports the CPUs the kernel brought up,
  * runs a static multi-threaded program (cross-compiled here with Debian's
    gcc-aarch64-linux-gnu) with one thread pinned to each CPU, hammering an LL/SC atomic
    counter and a mutex, and checks the totals,
  * takes every secondary CPU offline and back online through sysfs (PSCI CPU_OFF/CPU_ON)
    and runs the program again on all CPUs,
  * prints /proc/interrupts, where each CPU must have received IPIs and timer ticks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from petard.guest.overlay import ExtraFile, initrd_with_extra_files

CROSS_COMPILER = "aarch64-linux-gnu-gcc"
STRESS_SOURCE = Path(__file__).with_name("test_unicorn_smp_stress.c")
STRESS_ITERATIONS = 40_000
TEST_DIR = "petard-smp"
DONE_MARKER = "SMP-TEST-DONE"

TEST_INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox --install -s
cpus=$(nproc)
echo "SMP-CPUS nproc=$cpus online=$(cat /sys/devices/system/cpu/online)"
/{TEST_DIR}/stress $cpus {STRESS_ITERATIONS}
for cpu in /sys/devices/system/cpu/cpu[1-9]*; do
    echo 0 > $cpu/online
done
echo "SMP-OFFLINE online=$(cat /sys/devices/system/cpu/online)"
for cpu in /sys/devices/system/cpu/cpu[1-9]*; do
    echo 1 > $cpu/online
done
echo "SMP-ONLINE online=$(cat /sys/devices/system/cpu/online)"
/{TEST_DIR}/stress $cpus {STRESS_ITERATIONS}
echo SMP-INTERRUPTS-BEGIN
cat /proc/interrupts
echo SMP-INTERRUPTS-END
echo {DONE_MARKER}
sleep 1     # let the UART drain before the forced power-off
poweroff -f
"""


@pytest.fixture(scope="module")
def smp_initrd(guest, tmp_path_factory):
    compiler = shutil.which(CROSS_COMPILER)
    if compiler is None:
        pytest.fail(f"{CROSS_COMPILER} is needed (Debian package gcc-aarch64-linux-gnu)")
    workdir = tmp_path_factory.mktemp("smp-guest")
    binary = workdir / "stress"
    subprocess.run([compiler, "-O2", "-static", "-pthread", "-march=armv8-a", "-mno-outline-atomics",
                    "-o", str(binary), str(STRESS_SOURCE)], check=True)
    files = {f"{TEST_DIR}/stress": ExtraFile(binary.read_bytes(), 0o755),
             f"{TEST_DIR}/init": ExtraFile(TEST_INIT.encode(), 0o755)}
    return initrd_with_extra_files(guest.initrd, files, workdir / "initrd-smp.cpio.gz")


def interrupt_counts(output: str, cpu_count: int) -> dict[str, list[int]]:
    """/proc/interrupts rows: name (e.g. "IPI0", "11") -> per-CPU counts."""
    table = output.split("SMP-INTERRUPTS-BEGIN", 1)[1].split("SMP-INTERRUPTS-END", 1)[0]
    rows = {}
    for line in table.splitlines():
        match = re.match(r"\s*(\w+):((?:\s+\d+){%d})\s+(.*)" % cpu_count, line)
        if match:
            rows[match.group(1)] = [int(count) for count in match.group(2).split()]
            rows[match.group(1) + " name"] = match.group(3)
    return rows


@pytest.mark.parametrize("gic_version", ["3", "2"])
@pytest.mark.parametrize("vcpu_count", [2, 4])
def test_smp_guest_atomics_hotplug_and_ipis(spawn, guest, smp_initrd, gic_version, vcpu_count):
    vmm = spawn("--backend", "unicorn", "--gic-version", gic_version)
    assert vmm.api.put("/machine-config", {"vcpu_count": vcpu_count, "mem_size_mib": 256}).status == 204
    assert vmm.api.put("/boot-source", {
        "kernel_image_path": str(guest.kernel), "initrd_path": str(smp_initrd),
        "boot_args": f"console=ttyS0 reboot=k panic=1 rdinit=/{TEST_DIR}/init"}).status == 204
    assert vmm.api.put("/actions", {"action_type": "InstanceStart"}).status == 204
    assert vmm.wait_exit(timeout=300) == 0, vmm.output[-3000:]
    output = vmm.output
    assert DONE_MARKER in output, output[-3000:]
    for failure in ("Oops", "BUG:", "Kernel panic", "Unable to handle", "rcu_sched self-detected stall"):
        assert failure not in output, output[-3000:]
    last = vcpu_count - 1
    assert f"smp: Brought up 1 node, {vcpu_count} CPUs" in output
    assert f"SMP-CPUS nproc={vcpu_count} online=0-{last}" in output

    results = re.findall(r"STRESS threads=(\d+) atomic=(\d+)/(\d+) mutex=(\d+)/(\d+) plain=(\d+) "
                         r"cpus=([\d,-]+) (STRESS-\w+)", output)
    assert len(results) == 2, output[-3000:]
    for threads, atomic, atomic_expected, mutex, mutex_expected, _plain, cpus, verdict in results:
        assert int(threads) == vcpu_count
        assert atomic == atomic_expected and mutex == mutex_expected
        assert cpus == ",".join(str(cpu) for cpu in range(vcpu_count))   # one thread on each CPU
        assert verdict == "STRESS-OK"

    # Hotplug: everything but the boot CPU went through PSCI CPU_OFF and came back.
    assert "SMP-OFFLINE online=0\n" in output.replace("\r\n", "\n")
    for cpu in range(1, vcpu_count):
        assert f"psci: CPU{cpu} killed" in output
        assert output.count(f"CPU{cpu}: Booted secondary processor") == 2
    assert f"SMP-ONLINE online=0-{last}" in output

    rows = interrupt_counts(output, vcpu_count)
    ipi_rows = [name for name in rows if re.fullmatch(r"IPI\d+", name)]
    assert ipi_rows, output[-3000:]
    ipis_per_cpu = [sum(rows[name][cpu] for name in ipi_rows) for cpu in range(vcpu_count)]
    assert all(count > 0 for count in ipis_per_cpu), ipis_per_cpu
    timer = next(name for name in rows if "arch_timer" in rows.get(name + " name", ""))
    assert all(count > 0 for count in rows[timer]), rows[timer]
