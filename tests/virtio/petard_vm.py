"""A real ``petard`` process on the Unicorn backend, configured over its HTTP API socket
(the pattern of tests/api/petard_proc.py), and the guest's serial console in a file.

With ``interactive`` its stdin is a pipe, which petard takes as the console's input (a FIFO,
as upstream): `run(command)` types a shell command and returns its output and status."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
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
    def __init__(self, workdir: Path, backend: str = "unicorn", interactive: bool = False) -> None:
        self.workdir = workdir
        self.socket = str(workdir / "api.sock")
        self.serial = workdir / "serial.log"
        self.log = workdir / "petard.out"
        self._log_file = open(self.log, "wb")
        self._commands = itertools.count(1)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "petard", "--api-sock", self.socket, "--backend", backend, "--level", "Info"],
            stdout=self._log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if interactive else subprocess.DEVNULL, cwd=workdir,
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

    def send(self, text: str) -> None:
        """Type `text` on the guest's console (interactive only)."""
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def run(self, command: str, timeout: float = 120) -> tuple[str, int]:
        """Run a shell command in the guest; its output (without the echoed line) and status."""
        number = next(self._commands)
        start = len(self.console())
        # The marker is assembled by the shell, so the echoed command line never matches it.
        self.send(f"{command}; echo \"@@PETARD\"\"-DONE-{number}-$?@@\"\n")
        pattern = re.compile(rf"@@PETARD-DONE-{number}-(\d+)@@")
        deadline = time.monotonic() + timeout
        while (match := pattern.search(self.console(), start)) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no answer to {command!r}:\n{self.console()[-3000:]}")
            time.sleep(0.05)
        text = self.console()[start:match.start()]
        echo_end = text.rfind(f"-DONE-{number}-$?@@\"")
        if echo_end >= 0:
            text = text[text.find("\n", echo_end) + 1:] if "\n" in text[echo_end:] else ""
        return text.replace("\r\n", "\n").strip("\n"), int(match.group(1))

    def rss_kib(self) -> int:
        """The petard process's resident memory."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def wait_exit(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"petard still running after {timeout}s:\n{self.console()[-4000:]}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.process.stdin is not None:
            self.process.stdin.close()
        self._log_file.close()
