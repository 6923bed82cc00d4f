"""The API's Unix socket, bound with upstream's rules before any heavy module is imported.

Mode 0600; a stale socket file (nobody answers on it) is replaced; a socket in use is
refused with upstream's text. Binding first is what makes the socket connectable within
milliseconds of process start: connections wait in the listen backlog while the HTTP
stack loads.

Every Firecracker client waits for the socket file to appear and connects at once, so the
file appears only once the socket listens: it is bound and listening under a temporary
name in the same directory first, then hard-linked into place. link() fails if the name
exists, so two processes racing for one path still end with one owner and one refusal.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from petard.api import wire

LISTEN_BACKLOG = 128
SOCKET_PATH_MAX = 107     # sockaddr_un.sun_path holds 108 bytes with the closing NUL


class SocketInUseError(OSError):
    pass


def bind_api_socket(path: str) -> socket.socket:
    """Listen on ``path``; replace a stale socket file, refuse one in use."""
    if os.path.lexists(path):
        if stat.S_ISSOCK(os.lstat(path).st_mode) and _socket_answers(path):
            raise SocketInUseError(errno.EADDRINUSE, wire.SOCKET_IN_USE.format(path=path))
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    staging = _staging_name(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(staging or path)
    except OSError as error:
        sock.close()
        raise SocketInUseError(error.errno, wire.SOCKET_IN_USE.format(path=path)) from None
    finally:
        os.umask(old_umask)
    try:
        os.chmod(staging or path, 0o600)
        sock.listen(LISTEN_BACKLOG)
        if staging:
            os.link(staging, path)
    except OSError as error:
        sock.close()
        raise SocketInUseError(error.errno, wire.SOCKET_IN_USE.format(path=path)) from None
    finally:
        if staging:
            os.unlink(staging)
    return sock


def _staging_name(path: str) -> str | None:
    """A free name beside ``path`` that still fits a socket address, or None (then the
    socket is bound in place, as a path at the length limit leaves no room)."""
    directory, name = os.path.split(path)
    for candidate in (f".{name}.{os.getpid()}.binding", f".petard-{os.getpid()}"):
        staging = os.path.join(directory, candidate)
        if len(os.fsencode(staging)) <= SOCKET_PATH_MAX and not os.path.lexists(staging):
            return staging
    return None


def _socket_answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
