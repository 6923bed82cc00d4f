"""KVM exit round-trip cost: petard's Python vCPU loop against a minimal C loop.

Both run the same guest program (tests/kvm/guest_programs.py `count_writes`: N 64-bit MMIO
writes, then PSCI SYSTEM_OFF) in the same emulated aarch64 host, alternately, and serve
every write: petard through `KvmBackend` (KVM_RUN thread, exit decode, MmioBus, device
under the bus lock), C through benchmarks/kvm_exit_loop.c (cross-compiled at run time
with gcc-aarch64-linux-gnu). Each side times its first to its last MMIO write; the
result is the median ns per exit of each and their ratio (goal: Python/C <= 1.3). A third
figure, the smallest possible Python loop on the same VM (KVM_RUN + one unpack), shows how
much of the difference is the interpreter itself.

    python benchmarks/kvm_exit_cost.py [--exits 5000] [--rounds 3] [--gic-version 3]

Run on the x86 build machine: it builds and boots the emulated host (tests/kvm_nested),
which runs this same file with --inside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
C_SOURCE = HERE / "kvm_exit_loop.c"
C_BINARY = "kvm_exit_loop"
GUEST_PROGRAM = "count_writes"
RESULT_PREFIX = "kvm-exit-cost:"
GOAL_RATIO = 1.3


# --- inside the emulated host ------------------------------------------------------------


class CountingDevice:
    """Counts MMIO writes; notes the time of the first and of the `expected`-th."""

    mmio_size = 0x1000

    def __init__(self, expected: int):
        self.expected = expected
        self.count = 0
        self.first_ns = self.last_ns = 0

    def mmio_read(self, offset: int, size: int) -> int:
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.count += 1
        if self.count == 1:
            self.first_ns = time.monotonic_ns()
        elif self.count == self.expected:
            self.last_ns = time.monotonic_ns()


def python_ns_per_exit(exits: int, gic_version: int) -> float:
    sys.path.insert(0, str(HERE.parent / "tests" / "kvm"))
    from kvm_testing import make_machine

    from petard.backends.kvm import KvmBackend
    from petard.core.backend import ExitReason, GicVersion

    device = CountingDevice(exits)
    description, _ = make_machine(GUEST_PROGRAM, GicVersion(gic_version), x0=exits, device=device)
    vm = KvmBackend().create_vm(description)
    try:
        vm_exit = vm.run()
    finally:
        vm.close()
    if vm_exit.reason is not ExitReason.POWER_OFF or device.count != exits:
        raise RuntimeError(f"python loop: {vm_exit.describe()}, {device.count} of {exits} writes")
    return (device.last_ns - device.first_ns) / (exits - 1)


def bare_python_ns_per_exit(exits: int, gic_version: int) -> float:
    """The floor of any Python monitor: the same VM, served by the smallest Python loop
    (KVM_RUN, one unpack, count), without petard's bus, lock, device or thread."""
    sys.path.insert(0, str(HERE.parent / "tests" / "kvm"))
    import fcntl

    from kvm_testing import make_machine

    from petard.backends.kvm import KvmBackend
    from petard.backends.kvm import kvm_abi as abi
    from petard.core.backend import GicVersion

    description, _ = make_machine(GUEST_PROGRAM, GicVersion(gic_version), x0=exits)
    vm = KvmBackend().create_vm(description)
    fd, run = vm.vcpus[0].fd.fd, vm.vcpus[0].fd.run
    ioctl, request, exit_of = fcntl.ioctl, abi.KVM_RUN, abi.kvm_run_exit_and_mmio.unpack_from
    writes, first, last = 0, 0, 0
    try:
        while True:
            ioctl(fd, request, 0)
            reason = exit_of(run)[0]
            if reason != abi.KVM_EXIT_MMIO:
                break
            writes += 1
            if writes == 1:
                first = time.monotonic_ns()
            elif writes == exits:
                last = time.monotonic_ns()
    finally:
        vm.close()
    if reason != abi.KVM_EXIT_SYSTEM_EVENT or writes != exits:
        raise RuntimeError(f"bare loop: exit reason {reason} after {writes} of {exits} writes")
    return (last - first) / (exits - 1)


def c_ns_per_exit(exits: int, gic_version: int) -> float:
    program = Path(os.environ["PETARD_GUEST_PROGRAMS"]) / f"{GUEST_PROGRAM}.bin"
    binary = Path(os.environ["PETARD_TOOLS"]) / C_BINARY
    output = subprocess.run([str(binary), str(program), str(exits), str(gic_version)],
                            capture_output=True, text=True, check=True).stdout
    return float(output.split("ns-per-exit")[1])


def inside(exits: int, rounds: int) -> int:
    gic_version = int(os.environ.get("PETARD_EXPECTED_GIC", "3"))
    # one process per Python measurement: see tests/kvm/run_in_host.py (one VM per process)
    results: dict[str, list[float]] = {"C": [], "petard": [], "bare Python": []}
    for round_number in range(rounds):
        results["C"].append(c_ns_per_exit(exits, gic_version))
        for name, flag in (("petard", "--python-once"), ("bare Python", "--bare-once")):
            output = subprocess.run([sys.executable, __file__, flag, "--exits", str(exits)],
                                    capture_output=True, text=True)
            if output.returncode != 0:
                print(output.stdout + output.stderr)
                return 1
            results[name].append(float(output.stdout.split()[-1]))
        print(f"{RESULT_PREFIX} round {round_number + 1}: "
              + ", ".join(f"{name} {values[-1] / 1000:.1f} us" for name, values in results.items())
              + " per exit", flush=True)
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"{RESULT_PREFIX} GICv{gic_version}, {exits} exits x {rounds} rounds, median per exit: "
          + ", ".join(f"{name} {value / 1000:.1f} us" for name, value in medians.items()), flush=True)
    print(f"{RESULT_PREFIX} ratio petard/C = {medians['petard'] / medians['C']:.2f} (goal <= {GOAL_RATIO}); "
          f"bare Python/C = {medians['bare Python'] / medians['C']:.2f}", flush=True)
    return 0


# --- on the build machine -------------------------------------------------------------------


def on_build_machine(exits: int, rounds: int, gic_version: int) -> int:
    repo = HERE.parent
    for path in (repo / "tests" / "kvm_nested", repo / "tests"):
        sys.path.insert(0, str(path))
    import tempfile

    import emulated_host

    binary = emulated_host.cross_compile(C_SOURCE, C_BINARY)
    command = f"python3.11 benchmarks/{Path(__file__).name} --inside --exits {exits} --rounds {rounds}"
    with tempfile.TemporaryDirectory(prefix="petard-kvm-bench-") as tmp:
        initrd = emulated_host.build_initrd(command, Path(tmp) / "initrd.cpio.gz", [binary])
        run = emulated_host.boot(initrd, gic_version, timeout_s=1800)
    lines = [line for line in run.console.splitlines() if line.startswith(RESULT_PREFIX)]
    print("\n".join(lines) if lines else run.console[-3000:])
    print(f"(emulated host ran {run.seconds:.1f} s)")
    return 0 if run.exit_code == 0 and lines else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exits", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gic-version", type=int, choices=(2, 3), default=3)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--python-once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.python_once:
        print(python_ns_per_exit(args.exits, int(os.environ.get("PETARD_EXPECTED_GIC", "3"))))
        return 0
    if args.bare_once:
        print(bare_python_ns_per_exit(args.exits, int(os.environ.get("PETARD_EXPECTED_GIC", "3"))))
        return 0
    if args.inside:
        return inside(args.exits, args.rounds)
    return on_build_machine(args.exits, args.rounds, args.gic_version)


if __name__ == "__main__":
    sys.exit(main())
