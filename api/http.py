"""The HTTP side: the Unix socket, the flask app, and the cheroot server that serves it.

cheroot (CherryPy's server) is a production WSGI server in pure Python: threaded (no fork,
so the VMM state stays in this process) and HTTP/1.1 keep-alive on every response,
including the 204s of Firecracker's PUT-heavy configuration flow (waitress closes the
connection after each 204). It serves the socket :mod:`petard.api.unix_socket` bound.
Every response carries ``Server: Firecracker API``.
"""

from __future__ import annotations

import json
import socket
import threading
from http import HTTPStatus

from petard.api import wire
from petard.api.dispatch import Dispatcher, Reply, fault
from petard.core import logger as vmm_logging

log = vmm_logging.get("api")

API_THREAD_NAME = "fc_api"  # upstream's name for its API thread, as seen in log lines



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


def serve(sock: socket.socket, path: str, app, threads: int = 4) -> None:
    """Serve on the pre-bound socket (listening at ``path``) until the process exits
    (blocks this thread)."""
    from cheroot import wsgi

    class _PreboundServer(wsgi.Server):
        def bind_unix_socket(self, bind_addr):  # adopt our socket instead of binding again
            self.socket = sock

    server = _PreboundServer(path, app, numthreads=threads, server_name=wire.SERVER_HEADER)
    server.version = wire.SERVER_HEADER
    server.safe_start()
