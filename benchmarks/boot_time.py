"""Boot time to the guest's init marker: petard on Unicorn vs qemu-system-aarch64 TCG.

Same Debian kernel and initramfs (``petard.guest``), 1 vCPU, 256 MiB, runs alternating
between the two so host noise hits both alike; prints each run, the medians and their
ratio. Also measured, on petard:
  - the same boot while a client hammers the API with GET / on its Unix socket (the
    vCPU shares the process with the API threads; Unicorn callbacks take the GIL);
  - host CPU used by an idle guest (shell waiting on the console) over 10 s.

    .venv/bin/python benchmarks/boot_time.py [--runs 5] [--gic-version 3] [--vcpus 1]
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


def time_to_marker(command: list[str], on_start=None) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if on_start is not None:
        on_start()
    try:
        seen = b""
        while True:
            chunk = process.stdout.read1(4096)
            if not chunk:
                raise RuntimeError(f"{command[0]} ended before the marker:\n{seen[-2000:].decode(errors='replace')}")
            seen += chunk
            if MARKER in seen:
                return time.perf_counter() - started
            if time.perf_counter() - started > TIMEOUT_S:
                raise RuntimeError("no marker in time")
    finally:
        process.kill()
        process.wait()


def petard_command(workdir: str, guest, args, api_socket: str | None = None) -> list[str]:
    config = {
        "boot-source": {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                        "boot_args": "console=ttyS0 reboot=k panic=1 petard.test=poweroff"},
        "drives": [],
        "machine-config": {"vcpu_count": args.vcpus, "mem_size_mib": 256},
    }
    path = os.path.join(workdir, "vm.json")
    with open(path, "w") as config_file:
        json.dump(config, config_file)
    command = [sys.executable, "-m", "petard", "--config-file", path, "--backend", "unicorn",
               "--gic-version", str(args.gic_version), "--level", "Warning"]
    return command + (["--api-sock", api_socket] if api_socket else ["--no-api"])


def qemu_command(guest, args) -> list[str]:
    return ["qemu-system-aarch64", "-M", f"virt,gic-version={args.gic_version}", "-cpu", "cortex-a57",
            "-smp", str(args.vcpus), "-m", "256", "-nographic", "-no-reboot", "-kernel", str(guest.kernel),
            "-initrd", str(guest.initrd), "-append", "console=ttyAMA0 reboot=k panic=1 petard.test=poweroff"]


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


def idle_cpu_percent(workdir: str, guest, args, seconds: float = 10.0) -> float:
    config = os.path.join(workdir, "idle.json")
    with open(config, "w") as config_file:
        json.dump({"boot-source": {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                                   "boot_args": "console=ttyS0 reboot=k panic=1"},
                   "drives": [], "machine-config": {"vcpu_count": args.vcpus, "mem_size_mib": 256}}, config_file)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gic-version", type=int, choices=(2, 3), default=3)
    parser.add_argument("--vcpus", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("qemu-system-aarch64") is None:
        sys.exit("qemu-system-aarch64 is needed as the peer (Debian package qemu-system-arm)")
    from petard.guest import artifacts

    guest = artifacts()
    with tempfile.TemporaryDirectory() as workdir:
        petard_times, qemu_times, loaded_times, requests = [], [], [], []
        print(f"boot to marker, {args.vcpus} vCPU(s), GICv{args.gic_version}, seconds:")
        print(f"{'run':>4}{'petard/unicorn':>16}{'qemu TCG':>12}{'petard+API load':>18}{'GET/s':>8}")
        for run in range(args.runs):
            petard_times.append(time_to_marker(petard_command(workdir, guest, args)))
            qemu_times.append(time_to_marker(qemu_command(guest, args)))
            socket_path = os.path.join(workdir, f"api{run}.sock")
            stop, counter = threading.Event(), [0]
            client = threading.Thread(target=hammer, args=(socket_path, stop, counter), daemon=True)
            loaded = time_to_marker(petard_command(workdir, guest, args, api_socket=socket_path), client.start)
            stop.set()
            client.join(5)
            loaded_times.append(loaded)
            requests.append(counter[0] / loaded)
            print(f"{run:>4}{petard_times[-1]:>16.2f}{qemu_times[-1]:>12.2f}{loaded:>18.2f}{requests[-1]:>8.0f}")
        petard_median, qemu_median = statistics.median(petard_times), statistics.median(qemu_times)
        loaded_median = statistics.median(loaded_times)
        print(f"{'median':>4}{petard_median:>16.2f}{qemu_median:>12.2f}{loaded_median:>18.2f}")
        print(f"ratio petard/qemu: {petard_median / qemu_median:.2f}x (goal <= 1.5x); "
              f"under API load: {loaded_median / qemu_median:.2f}x "
              f"({statistics.median(requests):.0f} GET / per second served meanwhile)")
        print(f"idle guest: petard uses {idle_cpu_percent(workdir, guest, args):.1f}% of a host core (goal < 5%)")


if __name__ == "__main__":
    main()
