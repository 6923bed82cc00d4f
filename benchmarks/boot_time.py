"""Boot time to the guest's init marker: petard on Unicorn vs qemu-system-aarch64 TCG.

Same Debian kernel and initramfs (``petard.guest``), 256 MiB, for each vCPU count asked
(qemu gets ``-smp N``), runs alternating between the two so host noise hits both alike;
prints each run's wall time to the marker and the CPU time the process used until then
(less sensitive to other load on the host than wall time), the medians and their ratios.
Also measured, on petard:
  - the same boot while a client hammers the API with GET / on its Unix socket (the
    vCPU shares the process with the API threads; Unicorn callbacks take the GIL);
  - host CPU used by an idle guest (shell waiting on the console) over 10 s.

    .venv/bin/python benchmarks/boot_time.py [--runs 5] [--gic-version 3] [--vcpus 1,2,4]
        [--no-api-load] [--no-idle]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MARKER = b"PETARD-GUEST-READY"
TIMEOUT_S = 300


def time_to_marker(command: list[str], on_start=None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process) from spawn to the marker on its output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if on_start is not None:
        on_start()
    reaped = False
    try:
        seen = b""
        while True:
            chunk = process.stdout.read1(4096)
            if not chunk:
                raise RuntimeError(f"{command[0]} ended before the marker:\n{seen[-2000:].decode(errors='replace')}")
            seen += chunk
            if MARKER in seen:
                wall = time.perf_counter() - started
                process.kill()
                _, _, usage = os.wait4(process.pid, 0)
                reaped = True
                process.returncode = -9
                return wall, usage.ru_utime + usage.ru_stime
            if time.perf_counter() - started > TIMEOUT_S:
                raise RuntimeError("no marker in time")
    finally:
        if not reaped:
            process.kill()
            process.wait()


def petard_command(workdir: str, guest, args, vcpus: int, api_socket: str | None = None) -> list[str]:
    config = {
        "boot-source": {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                        "boot_args": "console=ttyS0 reboot=k panic=1 petard.test=poweroff"},
        "drives": [],
        "machine-config": {"vcpu_count": vcpus, "mem_size_mib": 256},
    }
    path = os.path.join(workdir, "vm.json")
    with open(path, "w") as config_file:
        json.dump(config, config_file)
    command = [sys.executable, "-m", "petard", "--config-file", path, "--backend", "unicorn",
               "--gic-version", str(args.gic_version), "--level", "Warning"]
    return command + (["--api-sock", api_socket] if api_socket else ["--no-api"])


def qemu_command(guest, args, vcpus: int) -> list[str]:
    return ["qemu-system-aarch64", "-M", f"virt,gic-version={args.gic_version}", "-cpu", "cortex-a57",
            "-smp", str(vcpus), "-m", "256", "-nographic", "-no-reboot", "-nic", "none",
            "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
            "-append", "console=ttyAMA0 reboot=k panic=1 petard.test=poweroff"]


def hammer(socket_path: str, stop: threading.Event, counter: list[int]) -> None:
    while not os.path.exists(socket_path) and not stop.is_set():
        time.sleep(0.001)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    while not stop.is_set():
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(socket_path)
                while not stop.is_set():
                    client.sendall(request)
                    reply = client.recv(4096)
                    if not reply:
                        break
                    counter[0] += 1
        except OSError:
            time.sleep(0.001)


def idle_cpu_percent(workdir: str, guest, args, vcpus: int, seconds: float = 10.0) -> float:
    config = os.path.join(workdir, "idle.json")
    with open(config, "w") as config_file:
        json.dump({"boot-source": {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                                   "boot_args": "console=ttyS0 reboot=k panic=1"},
                   "drives": [], "machine-config": {"vcpu_count": vcpus, "mem_size_mib": 256}}, config_file)
    process = subprocess.Popen([sys.executable, "-m", "petard", "--no-api", "--config-file", config, "--backend",
                                "unicorn", "--gic-version", str(args.gic_version), "--level", "Warning"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        seen = b""
        while MARKER not in seen:
            chunk = process.stdout.read1(4096)
            if not chunk:
                raise RuntimeError("petard ended before the marker")
            seen += chunk
        threading.Thread(target=lambda: [None for _ in iter(lambda: process.stdout.read1(4096), b"")],
                         daemon=True).start()
        time.sleep(2)  # let the shell settle
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_seconds() -> float:
            with open(f"/proc/{process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        before, started = cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        return 100 * (cpu_seconds() - before) / (time.perf_counter() - started)
    finally:
        process.kill()
        process.wait()


def measure(workdir: str, guest, args, vcpus: int) -> dict:
    petard, qemu, loaded, requests = [], [], [], []
    print(f"\nboot to marker, {vcpus} vCPU(s), GICv{args.gic_version}: wall s (CPU s)")
    print(f"{'run':>4}{'petard/unicorn':>18}{'qemu TCG':>18}" + (f"{'petard+API load':>18}{'GET/s':>8}" if args.api_load else ""))
    for run in range(args.runs):
        petard.append(time_to_marker(petard_command(workdir, guest, args, vcpus)))
        qemu.append(time_to_marker(qemu_command(guest, args, vcpus)))
        line = f"{run:>4}{petard[-1][0]:>10.2f} ({petard[-1][1]:>4.2f}){qemu[-1][0]:>10.2f} ({qemu[-1][1]:>4.2f})"
        if args.api_load:
            socket_path = os.path.join(workdir, f"api{vcpus}-{run}.sock")
            stop, counter = threading.Event(), [0]
            client = threading.Thread(target=hammer, args=(socket_path, stop, counter), daemon=True)
            wall, _ = time_to_marker(petard_command(workdir, guest, args, vcpus, api_socket=socket_path), client.start)
            stop.set()
            client.join(5)
            loaded.append(wall)
            requests.append(counter[0] / wall)
            line += f"{wall:>18.2f}{requests[-1]:>8.0f}"
        print(line, flush=True)
    result = {
        "vcpus": vcpus,
        "petard_wall": statistics.median(w for w, _ in petard), "qemu_wall": statistics.median(w for w, _ in qemu),
        "petard_cpu": statistics.median(c for _, c in petard), "qemu_cpu": statistics.median(c for _, c in qemu),
        "petard_wall_spread": (min(w for w, _ in petard), max(w for w, _ in petard)),
        "qemu_wall_spread": (min(w for w, _ in qemu), max(w for w, _ in qemu)),
    }
    print(f"{'median':>6}{result['petard_wall']:>8.2f} ({result['petard_cpu']:>4.2f})"
          f"{result['qemu_wall']:>10.2f} ({result['qemu_cpu']:>4.2f})")
    print(f"ratio petard/qemu, {vcpus} vCPU(s): wall {result['petard_wall'] / result['qemu_wall']:.2f}x, "
          f"CPU {result['petard_cpu'] / result['qemu_cpu']:.2f}x (goal <= 1.5x)")
    if args.api_load:
        loaded_median = statistics.median(loaded)
        print(f"under API load: {loaded_median / result['qemu_wall']:.2f}x "
              f"({statistics.median(requests):.0f} GET / per second served meanwhile)")
    if args.idle:
        result["idle_percent"] = idle_cpu_percent(workdir, guest, args, vcpus)
        print(f"idle guest, {vcpus} vCPU(s): petard uses {result['idle_percent']:.1f}% of a host core (goal < 5%)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gic-version", type=int, choices=(2, 3), default=3)
    parser.add_argument("--vcpus", default="1", help="vCPU counts to measure, comma-separated (e.g. 1,2,4)")
    parser.add_argument("--no-api-load", dest="api_load", action="store_false", help="skip the boots under API load")
    parser.add_argument("--no-idle", dest="idle", action="store_false", help="skip the idle-guest CPU measurement")
    args = parser.parse_args()
    if shutil.which("qemu-system-aarch64") is None:
        sys.exit("qemu-system-aarch64 is needed as the peer (Debian package qemu-system-arm)")
    from petard.guest import artifacts

    guest = artifacts()
    with tempfile.TemporaryDirectory() as workdir:
        results = [measure(workdir, guest, args, int(count)) for count in args.vcpus.split(",")]
    print("\nsummary (medians): vCPUs, petard wall, qemu wall, wall ratio, CPU ratio")
    for result in results:
        print(f"{result['vcpus']:>4}{result['petard_wall']:>8.2f}{result['qemu_wall']:>8.2f}"
              f"{result['petard_wall'] / result['qemu_wall']:>8.2f}x{result['petard_cpu'] / result['qemu_cpu']:>8.2f}x")


if __name__ == "__main__":
    main()
