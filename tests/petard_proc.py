"""Run a real ``petard`` process and talk HTTP to it over its Unix socket (keep-alive)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any



class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float = 30.0):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def fault(self) -> str:
        return self.json()["fault_message"]


class ApiClient:
    """A Firecracker API client on one keep-alive connection."""

    def __init__(self, socket_path: str):
        self.connection = UnixHTTPConnection(socket_path)

    def request(self, method: str, path: str, body: Any = None, raw: str | None = None) -> Response:
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        self.connection.request(method, path, body=payload, headers=headers)
        reply = self.connection.getresponse()
        text = reply.read().decode()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, text)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def put(self, path: str, body: Any = None, raw: str | None = None) -> Response:
        return self.request("PUT", path, body, raw)

    def patch(self, path: str, body: Any = None, raw: str | None = None) -> Response:
        return self.request("PATCH", path, body, raw)

    def close(self) -> None:
        self.connection.close()


class PetardProcess:
    """``python -m petard`` with a socket and a log file under ``workdir``."""

    def __init__(self, workdir: Path, *extra_args: str, api: bool = True, env: dict | None = None,
                 stdin: Any = subprocess.DEVNULL):
        self.workdir = workdir
        self.socket_path = str(workdir / "fc.sock")
        self.output_path = workdir / "petard.out"
        args = [sys.executable, "-m", "petard", *extra_args]
        if api and "--api-sock" not in extra_args:
            args[3:3] = ["--api-sock", self.socket_path]
        self._output = open(self.output_path, "wb")
        self.process = subprocess.Popen(
            args, stdout=self._output, stderr=subprocess.STDOUT, stdin=stdin,
            cwd=workdir, env={**os.environ, **(env or {})},
        )
        self._client: ApiClient | None = None

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None:
                raise AssertionError(f"petard exited ({self.process.returncode}) before {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output}")
            time.sleep(0.02)

    def wait_started(self, timeout: float = 30.0) -> "PetardProcess":
        """Wait until the API answers (clients poll the socket; the log line may be filtered)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"petard exited ({self.process.returncode}) before serving:\n{self.output}")
            try:
                if ApiClient(self.socket_path).get("/").status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"API not answering within {timeout}s:\n{self.output}")
            time.sleep(0.02)

    @property
    def api(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(self.socket_path)
        return self._client

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._output.close()
