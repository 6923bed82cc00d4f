"""API server speed: process start to socket ready, and request latency over the Unix socket.

Prints, for ``petard`` (and for ``firecracker`` too when ``--peer PATH`` names a binary):
  - process start -> socket connectable (ms) and -> first ``GET /`` answered (ms), median of N starts;
  - p50/p99 latency of ``GET /`` and ``PUT /machine-config`` on one keep-alive connection.
Goals (issue 2): socket ready <= 150 ms, p99 < 5 ms.

    .venv/bin/python benchmarks/api_latency.py [--starts 10] [--requests 2000] [--peer /path/to/firecracker]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def command(binary: str | None, socket_path: str) -> list[str]:
    if binary is None:
        return [sys.executable, "-m", "petard", "--api-sock", socket_path, "--backend", "unicorn",
                "--level", "Warning"]
    return [binary, "--api-sock", socket_path, "--level", "Warning"]


def time_start(binary: str | None) -> tuple[float, float]:
    """(ms to connectable socket, ms to first GET / answered) for one fresh process."""
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "api.sock")
        started = time.perf_counter()
        process = subprocess.Popen(command(binary, path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            connectable = None
            while connectable is None:
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(path)
                    connectable = (time.perf_counter() - started) * 1000
                except OSError:
                    time.sleep(0.0005)
                finally:
                    probe.close()
            connection = UnixHTTPConnection(path)
            connection.request("GET", "/")
            connection.getresponse().read()
            answered = (time.perf_counter() - started) * 1000
            connection.close()
            return connectable, answered
        finally:
            process.kill()
            process.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def time_requests(binary: str | None, count: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "api.sock")
        process = subprocess.Popen(command(binary, path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(path):
                if time.monotonic() > deadline:
                    raise RuntimeError("API socket never appeared")
                time.sleep(0.01)
            connection = UnixHTTPConnection(path)
            body = json.dumps({"vcpu_count": 1, "mem_size_mib": 128})
            results = {}
            for name, method, url, payload in (("GET /", "GET", "/", None),
                                               ("PUT /machine-config", "PUT", "/machine-config", body)):
                samples = []
                for _ in range(count // 10):  # warm-up
                    connection.request(method, url, body=payload)
                    connection.getresponse().read()
                for _ in range(count):
                    started = time.perf_counter()
                    connection.request(method, url, body=payload)
                    reply = connection.getresponse()
                    reply.read()
                    samples.append((time.perf_counter() - started) * 1000)
                    assert reply.status in (200, 204), reply.status
                results[name] = (statistics.median(samples), percentile(samples, 0.99))
            connection.close()
            return results
        finally:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--peer", help="a firecracker binary to measure side by side")
    args = parser.parse_args()
    subjects = [("petard", None)] + ([("firecracker", args.peer)] if args.peer else [])
    print(f"{'':24}" + "".join(f"{name:>16}" for name, _ in subjects))
    starts = {name: [time_start(binary) for _ in range(args.starts)] for name, binary in subjects}
    print(f"{'socket connectable ms':24}" + "".join(
        f"{statistics.median(s[0] for s in starts[name]):16.1f}" for name, _ in subjects))
    print(f"{'first GET / answered ms':24}" + "".join(
        f"{statistics.median(s[1] for s in starts[name]):16.1f}" for name, _ in subjects))
    latencies = {name: time_requests(binary, args.requests) for name, binary in subjects}
    for request in ("GET /", "PUT /machine-config"):
        for index, label in ((0, "p50"), (1, "p99")):
            print(f"{request + ' ' + label + ' ms':24}" + "".join(
                f"{latencies[name][request][index]:16.3f}" for name, _ in subjects))
    if args.peer:
        print("ratios petard/firecracker:", ", ".join(
            f"{request} p50 {latencies['petard'][request][0] / latencies['firecracker'][request][0]:.1f}x"
            for request in ("GET /", "PUT /machine-config")))


if __name__ == "__main__":
    main()
