"""A real ``petard`` process on the Unicorn backend, configured over its HTTP API socket
(the pattern of tests/api/petard_proc.py), and the guest's serial console in a file."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class PetardVm:
    def __init__(self, workdir: Path, backend: str = "unicorn") -> None:
        self.workdir = workdir
        self.socket = str(workdir / "api.sock")
        self.serial = workdir / "serial.log"
        self.log = workdir / "petard.out"
        self._log_file = open(self.log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "petard", "--api-sock", self.socket, "--backend", backend, "--level", "Info"],
            stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
            env={**os.environ, "PETARD_DISABLE_PLUGIN_AUTOLOAD": "1"})
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"petard's API did not come up:\n{self.output()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            return self.request("GET", "/")[0] == 200
        except OSError:  # no socket yet, or bound but not listening
            return False

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        connection = _UnixConnection(self.socket)
        try:
            payload = None if body is None else json.dumps(body)
            connection.request(method, path, body=payload,
                               headers={"Content-Type": "application/json"} if payload else {})
            reply = connection.getresponse()
            text = reply.read().decode()
            return reply.status, (json.loads(text) if text else None)
        finally:
            connection.close()

    def put(self, path: str, body: Any) -> None:
        status, reply = self.request("PUT", path, body)
        assert status == 204, (path, status, reply)

    def patch(self, path: str, body: Any) -> tuple[int, Any]:
        return self.request("PATCH", path, body)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def console(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_console(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while text not in (console := self.console()):
            if self.process.poll() is not None:
                console = self.console()
                if text in console:
                    break
                raise AssertionError(f"petard exited ({self.process.returncode}) before {text!r}:\n"
                                     f"{console[-4000:]}\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{console[-4000:]}")
            time.sleep(0.05)
        return console

    def wait_exit(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"petard still running after {timeout}s:\n{self.console()[-4000:]}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()
