"""Firecracker's wire strings that belong to the API layer: versions, parse errors, log lines.

The VMM's own fault texts (what an action says when it fails) live in
:mod:`petard.core.faults`; this module holds what upstream's API server says itself.
"""

from __future__ import annotations

FIRECRACKER_VERSION = "1.17.0-dev"  # the upstream API version petard implements
SERVER_HEADER = "Firecracker API"
DEFAULT_API_SOCKET = "/run/firecracker.socket"
DEFAULT_MAX_PAYLOAD = 51200

EMPTY_ID = "The ID cannot be empty."
INVALID_ID = "API Resource IDs can only contain alphanumeric characters and underscores."
ID_MISMATCH = "The id from the path does not match the id from the body!"
CTRL_ALT_DEL_UNSUPPORTED = "SendCtrlAltDel does not supported on aarch64."
MISSING_SNAPSHOT_OPERATION = "Missing snapshot operation type."
SNAPSHOT_MISSING_MEM = "missing field: either `mem_backend` or `mem_file_path` is required"
SNAPSHOT_TOO_MANY_MEM = "too many fields: either `mem_backend` or `mem_file_path` exclusively is required"

DEPRECATED_CPU_TEMPLATE_PUT = "PUT /machine-config: cpu_template field is deprecated."
DEPRECATED_CPU_TEMPLATE_PATCH = "PATCH /machine-config: cpu_template field is deprecated."
DEPRECATED_VSOCK_ID = "PUT /vsock: vsock_id field is deprecated."
DEPRECATED_MMDS_V1 = "PUT /mmds/config: V1 is deprecated. Use V2 instead."
DEPRECATED_SNAPSHOT_LOAD = "PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated."

API_SERVER_STARTED = "API server started."
SOCKET_IN_USE = "Failed to open the API socket at: {path}. Check that it is not already used."
CONFIG_FILE_STARTED = "Successfully started microvm that was configured from one single json"
CONFIG_FILE_FAILED = "Configuration for VMM from one single json failed: {error}"
TOO_MANY_CONNECTIONS = "Too many open connections"


def empty_body(method: str) -> str:
    """Upstream's ``method_to_error`` (its DELETE text is spelled ``Delete``)."""
    return {"GET": "GET request cannot have a body.", "DELETE": "Empty Delete request."}.get(
        method, f"Empty {method} request."
    )


def invalid_path_method(method: str, path: str) -> str:
    return f"Invalid request method and/or path: {method} {path}."


def deserialize_error(message: str) -> str:
    return f"An error occurred when deserializing the json body of a request: {message}."


def payload_too_large(size: int, limit: int) -> str:
    return (
        f"Request payload with size {size} is larger than the limit of {limit} allowed by server.\n"
        "All previous unanswered requests will be dropped."
    )


def rust_debug_str(text: str) -> str:
    """Rust's ``{:?}`` of a string: double-quoted with escapes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def request_received(method: str, path: str, body: str | None) -> str:
    """Upstream's per-request log line (the body is left out for ``/mmds``)."""
    method_debug = method.capitalize()
    if body is None or path == "/mmds":
        return f"The API server received a {method_debug} request on {rust_debug_str(path)}."
    return (
        f"The API server received a {method_debug} request on {rust_debug_str(path)} "
        f"with body {rust_debug_str(body)}."
    )


def request_succeeded(status: int) -> str:
    reason = {200: "200 OK", 204: "204 No Content"}[status]
    return f"The request was executed successfully. Status code: {reason}."


def request_failed(status: int, message: str) -> str:
    reason = {400: "400 Bad Request", 413: "413 Payload too large"}.get(status, str(status))
    return f"Received Error. Status code: {reason}. Message: {message}"
