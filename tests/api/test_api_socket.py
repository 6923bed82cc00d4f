"""The API socket file appears only once it listens, and keeps upstream's stale and in-use rules.

Firecracker's clients (its test framework, the Go SDK, the Python clients) wait for the
socket file and connect the moment it exists: a refused connection there is a failed start.
"""

from __future__ import annotations

import os
import socket
import stat
import time

import pytest

from petard.api import unix_socket
from petard.api.unix_socket import SocketInUseError, bind_api_socket

STARTS = 25


def _connect(path: str) -> None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    finally:
        client.close()


def test_the_file_does_not_exist_before_the_socket_listens(tmp_path, monkeypatch):
    path = str(tmp_path / "api.sock")
    seen_at_listen = []
    real_listen = socket.socket.listen

    def listen(self, *args):
        seen_at_listen.append(os.path.lexists(path))
        return real_listen(self, *args)

    monkeypatch.setattr(socket.socket, "listen", listen)
    sock = bind_api_socket(path)
    try:
        assert seen_at_listen == [False]
        _connect(path)
        mode = os.lstat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert os.listdir(tmp_path) == ["api.sock"]     # no staging name left behind
    finally:
        sock.close()


def test_a_client_connecting_the_instant_the_file_appears_is_never_refused(spawn, tmp_path):
    for start in range(STARTS):
        path = str(tmp_path / f"fc-{start}.sock")
        vmm = spawn("--backend", "unicorn", "--api-sock", path, wait=False)
        deadline = time.monotonic() + 30
        while not os.path.lexists(path):
            assert vmm.process.poll() is None, vmm.output
            assert time.monotonic() < deadline, f"no socket file within 30 s:\n{vmm.output}"
        _connect(path)      # ConnectionRefusedError here is the bug
        vmm.stop()


def test_a_path_held_by_another_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "api.sock"
    path.write_text("not a socket")
    with pytest.raises(SocketInUseError, match="Check that it is not already used"):
        bind_api_socket(str(path))
    assert path.read_text() == "not a socket"
    assert os.listdir(tmp_path) == ["api.sock"]


def test_a_listening_socket_is_refused_and_a_stale_one_replaced(tmp_path):
    path = str(tmp_path / "api.sock")
    first = bind_api_socket(path)
    with pytest.raises(SocketInUseError):
        bind_api_socket(path)
    first.close()                   # the file stays: now a stale socket
    second = bind_api_socket(path)
    try:
        _connect(path)
    finally:
        second.close()


def test_a_path_at_the_address_length_limit_is_bound_in_place(tmp_path):
    directory = tmp_path / ("d" * max(1, unix_socket.SOCKET_PATH_MAX - len(str(tmp_path)) - 8))
    directory.mkdir()
    path = str(directory / "s.sock")
    path = path + "k" * (unix_socket.SOCKET_PATH_MAX - len(os.fsencode(path)))
    assert len(os.fsencode(path)) == unix_socket.SOCKET_PATH_MAX
    sock = bind_api_socket(path)
    try:
        _connect(path)
        assert os.listdir(directory) == [os.path.basename(path)]
    finally:
        sock.close()
