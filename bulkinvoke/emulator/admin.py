"""The emulator's own small HTTP API, under ``/_emulator/`` on the SageMaker port.

    GET  /_emulator/stats       counters and gauges (see stats.py), per endpoint too
    GET  /_emulator/config      the current EmulatorConfig (latency in its text form)
    POST /_emulator/config      a JSON object of settings to change, e.g.
                                {"capacity_per_second": 50, "latency": "uniform:0.1-0.5"}
    GET  /_emulator/endpoints   the declared endpoints
    POST /_emulator/endpoints   declare one: {"name": ..., "output_path": ..., ...} (EndpointSpec)

Answers are JSON; a bad request gets 400 with ``{"message": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

from bulkinvoke.emulator.config import EndpointSpec
from bulkinvoke.emulator.service import AsyncInferenceService

PREFIX = "/_emulator/"


def handle_admin(
    service: AsyncInferenceService, method: str, path: str, body: bytes
) -> tuple[int, Any]:
    route = (method, path.removeprefix(PREFIX).rstrip("/"))
    try:
        if route == ("GET", "stats"):
            return 200, service.stats()
        if route == ("GET", "config"):
            return 200, service.config.to_json()
        if route == ("GET", "endpoints"):
            return 200, [spec.to_json() for spec in service.endpoints()]
        if route == ("POST", "config"):
            return 200, service.configure(**_object(body)).to_json()
        if route == ("POST", "endpoints"):
            spec = EndpointSpec(**_object(body))
            service.add_endpoint(spec)
            return 200, spec.to_json()
    except (ValueError, TypeError) as exc:
        return 400, {"message": str(exc)}
    return 404, {"message": f"no such emulator API: {method} {path}"}


def _object(body: bytes) -> dict[str, Any]:
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
