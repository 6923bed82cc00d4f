"""The API's Unix socket, bound with upstream's rules before any heavy module is imported.

Mode 0600; a stale socket file (nobody answers on it) is replaced; a socket in use is
refused with upstream's text. Binding first is what makes the socket connectable within
milliseconds of process start: connections wait in the listen backlog while the HTTP
stack loads.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from petard.api import wire

LISTEN_BACKLOG = 128


class SocketInUseError(OSError):
    pass


def bind_api_socket(path: str) -> socket.socket:
    """Bind and listen on ``path``; replace a stale socket file, refuse one in use."""
    if os.path.lexists(path):
        if stat.S_ISSOCK(os.lstat(path).st_mode) and _socket_answers(path):
            raise SocketInUseError(errno.EADDRINUSE, wire.SOCKET_IN_USE.format(path=path))
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as error:
        sock.close()
        raise SocketInUseError(error.errno, wire.SOCKET_IN_USE.format(path=path)) from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(LISTEN_BACKLOG)
    return sock


def _socket_answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
