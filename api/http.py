"""The HTTP side: the Unix socket, the flask app, and the cheroot server that serves it.

cheroot (CherryPy's server) is a production WSGI server in pure Python: threaded (no fork,
so the VMM state stays in this process) and HTTP/1.1 keep-alive on every response,
including the 204s of Firecracker's PUT-heavy configuration flow (waitress closes the
connection after each 204). It serves a socket we bind ourselves, which is how the socket
gets upstream's rules (mode 0600, a stale file replaced, one in use refused). Every
response carries ``Server: Firecracker API``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import threading
from http import HTTPStatus

from petard.api import wire
from petard.api.dispatch import Dispatcher, Reply, fault
from petard.core import logger as vmm_logging

log = vmm_logging.get("api")

API_THREAD_NAME = "fc_api"  # upstream's name for its API thread, as seen in log lines



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
    sock.listen(128)
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


def create_app(dispatcher: Dispatcher, max_payload: int):
    """The flask app: one handler for every request, since routing follows upstream's rules."""
    from flask import Flask, Response, request

    app = Flask("petard.api")

    def respond(reply: Reply) -> Response:
        text = reply.json_text()
        response = Response(text if text is not None else b"")
        response.status = f"{reply.status} {HTTPStatus(reply.status).phrase}"
        if text is None:
            response.headers.pop("Content-Type", None)
        else:
            response.headers["Content-Type"] = "application/json"
        response.headers.update(reply.headers)
        return response

    # Every request is answered here, before flask's URL routing: paths and their errors
    # follow upstream's rules (routes.py), for any path and method.
    @app.before_request
    def handle() -> Response:
        threading.current_thread().name = API_THREAD_NAME
        length = request.content_length or 0
        if length > max_payload:
            body = json.dumps({"error": wire.payload_too_large(length, max_payload)})
            return Response(body, status=400, content_type="application/json")
        raw = request.get_data(cache=False) if length else b""
        try:
            text = raw.decode("utf-8") if raw else None
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
        try:
            reply = dispatcher.dispatch(request.method, request.path, text)
        except Exception as error:  # a bug answers like any VMM failure, and is logged
            log.exception("Internal error while serving %s %s", request.method, request.path)
            reply = fault(f"Internal VMM error: {error}")
        return respond(reply)

    return app


def serve(sock: socket.socket, app, threads: int = 4) -> None:
    """Serve on the pre-bound socket until the process exits (blocks this thread)."""
    from cheroot import wsgi

    class _PreboundServer(wsgi.Server):
        def bind_unix_socket(self, bind_addr):  # adopt our socket instead of binding again
            self.socket = sock

    server = _PreboundServer(sock.getsockname(), app, numthreads=threads, server_name=wire.SERVER_HEADER)
    server.version = wire.SERVER_HEADER
    server.safe_start()
