"""One API request from start to answer: log it, route it, hand it to the controller, shape the reply.

Framework-free, so the HTTP server and the ``--config-file`` replay share it: both call
:meth:`Dispatcher.dispatch` with a method, a path and a body, and get a :class:`Reply`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from petard.api import routes, vm_config, wire
from petard.core import faults
from petard.core import logger as vmm_logging
from petard.core.controller import Controller
from petard.core.lifecycle import Action

log = vmm_logging.get("api")


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serializable, or None for 204
    headers: dict[str, str] = field(default_factory=dict)

    def json_text(self) -> str | None:
        return None if self.body is None else json.dumps(self.body, separators=(",", ":"))


def fault(message: str, status: int = 400) -> Reply:
    return Reply(status, {"fault_message": message})


class Dispatcher:
    def __init__(self, controller: Controller):
        self.controller = controller
        self._previous_duration_us: int | None = None

    def dispatch(self, method: str, path: str, body: str | None) -> Reply:
        started = time.monotonic_ns()
        if self._previous_duration_us is not None:
            log.debug("Total previous API call duration: %d us.", self._previous_duration_us)
        log.info(wire.request_received(method, path, body))
        try:
            reply = self._serve(method, path, body)
        finally:
            self._previous_duration_us = (time.monotonic_ns() - started) // 1000
        return reply

    def _serve(self, method: str, path: str, body: str | None) -> Reply:
        try:
            parsed = routes.parse_request(method, path, body)
        except routes.RequestError as error:
            log.error("%s", error)
            return fault(str(error), error.status)
        metrics = self.controller.metrics
        if parsed.metric:
            group, prefix = parsed.metric
            metrics.inc(group, f"{prefix}_count")
        reply = self._answer(parsed)
        if reply.status >= 400:
            if parsed.metric and parsed.metric[0] != "get_api_requests":
                metrics.inc(parsed.metric[0], f"{parsed.metric[1]}_fails")
            log.error(wire.request_failed(reply.status, reply.body["fault_message"]))
        else:
            log.info(wire.request_succeeded(reply.status))
        if parsed.deprecation:
            log.warning(parsed.deprecation)
            reply.headers["Deprecation"] = "true"
        return reply

    def _answer(self, parsed: routes.ParsedRequest) -> Reply:
        controller = self.controller
        # Readers that never wait behind a long action.
        if parsed.action is Action.GET_VM_INSTANCE_INFO:
            return Reply(200, vm_config.instance_info(controller.instance_info()))
        if parsed.action is Action.GET_VMM_VERSION:
            return Reply(200, {"firecracker_version": controller.vmm_version})
        if parsed.action is Action.GET_FULL_VM_CONFIG:
            return Reply(200, vm_config.full_vm_config(controller.resources_view()))
        if parsed.action is Action.GET_VM_MACHINE_CONFIG:
            return Reply(200, vm_config.machine_config(controller.resources_view().machine))
        try:
            result = controller.handle(parsed.action, parsed.payload)
        except faults.VmmActionError as error:
            return fault(str(error), error.status)
        if parsed.action is Action.GET_MMDS:
            return Reply(200, {} if result is None else result)
        if result is None:
            return Reply(204)
        return Reply(200, result.model_dump(mode="json") if hasattr(result, "model_dump") else result)
