"""The guard over HTTP: ``POST /v1/guard``, ``GET /healthz``, ``GET /metrics``, ``GET /openapi.json``.

One event (a JSON object) gets one decision; a JSON array of events gets a
list of decisions in the same order. Bad input is answered, never crashed
on: 400 with every problem and the field at fault (``{"errors": [{"index",
"field", "error"}]}``), 413 for a body over ``max_body_bytes`` or a list
over ``max_events``. The same :class:`streams.guard.Guard` as in process,
so the decisions are the same.
"""

from __future__ import annotations

import re
import time

import msgspec
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from .guard import Guard

__all__ = ["build_http_app", "serve_http", "openapi_document"]

JSON = "application/json"


class GuardMetrics:
    """Prometheus series of the HTTP guard, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("inferwatch_guard_requests", "HTTP guard requests", ["code"], registry=self.registry)
        self.decisions = Counter("inferwatch_guard_decisions", "Guard decisions", ["action"], registry=self.registry)
        self.latency = Histogram("inferwatch_guard_request_seconds", "Time to answer one /v1/guard request",
                                 buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.05, 0.25, 1.0),
                                 registry=self.registry)


def build_http_app(guard: Guard, max_body_bytes: int = 8 << 20, max_events: int = 10_000) -> web.Application:
    metrics = GuardMetrics()
    app = web.Application(client_max_size=max_body_bytes)

    async def check(request: web.Request) -> web.Response:
        started = time.perf_counter()
        code, payload = await _answer(request, guard, max_events, metrics)
        metrics.requests.labels(str(code)).inc()
        metrics.latency.observe(time.perf_counter() - started)
        return web.Response(body=orjson.dumps(payload), status=code, content_type=JSON)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=JSON)

    async def prometheus(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), content_type="text/plain", charset="utf-8")

    document = orjson.dumps(openapi_document())

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=document, content_type=JSON)

    app.router.add_post("/v1/guard", check)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/openapi.json", openapi)
    return app


async def _answer(request: web.Request, guard: Guard, max_events: int, metrics: GuardMetrics) -> tuple[int, object]:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        return 413, {"errors": [{"index": None, "field": None, "error": exc.text or "request body too large"}]}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return 400, {"errors": [{"index": None, "field": None, "error": f"invalid JSON: {exc}"}]}
    if isinstance(parsed, dict):
        decision = guard.fast_check(parsed, size=len(body))
        if decision is None:
            (decision,) = guard.check_batch([body])
        if "error" in decision:
            return 400, {"errors": [_error(None, decision["error"])]}
        metrics.decisions.labels(decision["action"]).inc()
        return 200, decision
    if isinstance(parsed, list):
        if len(parsed) > max_events:
            return 413, {"errors": [{"index": None, "field": None,
                                     "error": f"{len(parsed)} events in one request, over the cap of {max_events}"}]}
        decisions = guard.check_batch(parsed)
        errors = [_error(i, d["error"]) for i, d in enumerate(decisions) if "error" in d]
        if errors:
            return 400, {"errors": errors}
        for d in decisions:
            metrics.decisions.labels(d["action"]).inc()
        return 200, decisions
    return 400, {"errors": [{"index": None, "field": None,
                             "error": f"expected an event (object) or a list of events, got {type(parsed).__name__}"}]}


_FIELD_PATTERNS = (
    re.compile(r"^missing required field: ([\w.]+)"),
    re.compile(r"missing required field `(\w+)`"),
    re.compile(r"at `\$\.([\w.\[\]]+)`"),
    re.compile(r"^([a-z_]+(?:\.[\w-]+)?): "),
)


def _error(index: int | None, message: str) -> dict:
    """An error entry, with the field at fault when the message names one."""
    field = None
    for pattern in _FIELD_PATTERNS:
        m = pattern.search(message)
        if m and m.group(1) not in ("invalid JSON", "wrong field"):
            field = m.group(1)
            break
    return {"index": index, "field": field, "error": message}


class Violation(msgspec.Struct):
    rule: str
    field: str | None
    message: str


class Decision(msgspec.Struct):
    event_id: str
    model: str
    action: str
    prediction: float | str | bool | dict | None
    original_prediction: float | str | bool | dict | None
    violations: list[Violation]
    fixed: dict[str, float | str | bool | None] | None = None


class InferenceEvent(msgspec.Struct):
    event_id: str
    model: str
    timestamp: str | float
    features: dict[str, float | str | bool | None]
    model_version: str | None = None
    prediction: float | str | bool | dict[str, float | str | bool | None] | None = None
    tags: dict[str, str] | None = None


class ErrorEntry(msgspec.Struct):
    index: int | None
    field: str | None
    error: str


class Errors(msgspec.Struct):
    errors: list[ErrorEntry]


def openapi_document() -> dict:
    """OpenAPI 3.1 description of the HTTP guard."""
    (event, decision, errors), components = msgspec.json.schema_components(
        [InferenceEvent, Decision, Errors], ref_template="#/components/schemas/{name}")
    ref = lambda s: s  # noqa: E731 (already $ref objects)
    json_of = lambda schema: {"application/json": {"schema": schema}}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {"title": "inferwatch guard", "version": "1",
                 "description": "Rule-based guardrails for model outputs (DESIGN.md section 4)."},
        "paths": {
            "/v1/guard": {"post": {
                "summary": "Decide one event, or a list of events in order",
                "requestBody": {"required": True, "content": json_of(
                    {"oneOf": [ref(event), {"type": "array", "items": ref(event)}]})},
                "responses": {
                    "200": {"description": "The decision(s)", "content": json_of(
                        {"oneOf": [ref(decision), {"type": "array", "items": ref(decision)}]})},
                    "400": {"description": "Invalid input: every problem, with the field at fault",
                            "content": json_of(ref(errors))},
                    "413": {"description": "Body or list too large", "content": json_of(ref(errors))},
                },
            }},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
        "components": {"schemas": components},
    }


def serve_http(guard: Guard, host: str, port: int) -> None:
    """Serve until stopped (uvloop, no access log: the guard sits in a serving path)."""
    import gc

    import uvloop

    gc.freeze()  # the config and compiled rules are long-lived: keep them out of collections
    web.run_app(build_http_app(guard), host=host, port=port, access_log=None, print=None,
                loop=uvloop.new_event_loop())
