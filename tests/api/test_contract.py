"""Contract test: schemathesis drives the running server with Firecracker's OpenAPI spec.

The spec is upstream's ``firecracker.yaml``, read from ``../shared/reference/`` beside the
checkout (not copied into the repository). Every generated request must get a non-5xx
answer whose status, content type and body the spec allows.

Two conventions come from upstream's own validator (``tests/framework/swagger_validator.py``):
explicit ``null`` values are dropped before a body is checked (upstream emits them, e.g. in
``GET /vm/config``, although its spec declares no field nullable), and a 204 carries no
``Content-Type`` (upstream sends none), so media types are checked on bodies only.

Operations that write files named by the request (``PUT /logger``, ``PUT /metrics``) are
left out of generation so random paths cannot create files on the host; their behaviour
is tested directly in test_api_preboot.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from schemathesis.core.transport import Response  # noqa: E402

from petard_proc import PetardProcess, UnixHTTPConnection  # noqa: E402

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "firecracker-swagger.yaml"

if not SPEC.exists():
    pytest.skip(f"Firecracker's OpenAPI spec is absent: expected at {SPEC}", allow_module_level=True)

schema = schemathesis.openapi.from_path(str(SPEC)).exclude(path=["/logger", "/metrics"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = PetardProcess(tmp_path_factory.mktemp("contract"), "--backend", "unicorn", "--level", "Error")
    process.wait_started()
    connection = UnixHTTPConnection(process.socket_path)
    yield connection
    connection.close()
    process.stop()


def without_nulls(value):
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value if item is not None]
    return value


def send(connection: UnixHTTPConnection, case) -> Response:
    """Send the generated request over the Unix socket; return it in schemathesis' terms."""
    prepared = requests.Request(**case.as_transport_kwargs(base_url="http://localhost")).prepare()
    target = urlsplit(prepared.url)
    path = target.path + (f"?{target.query}" if target.query else "")
    started = time.monotonic()
    connection.request(prepared.method, path, body=prepared.body, headers=dict(prepared.headers))
    reply = connection.getresponse()
    content = reply.read()
    if content and reply.getheader("Content-Type") == "application/json":
        content = json.dumps(without_nulls(json.loads(content))).encode()
    headers: dict[str, list[str]] = {}
    for name, value in reply.getheaders():
        headers.setdefault(name.lower(), []).append(value)
    return Response(status_code=reply.status, headers=headers, content=content, request=prepared,
                    elapsed=time.monotonic() - started, verify=False)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_upstream_spec(case, server):
    response = send(server, case)
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    if response.content:
        checks.append(content_type_conformance)
    case.validate_response(response, checks=checks)
