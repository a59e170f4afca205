"""The guard over HTTP: ``POST /v1/guard``, ``GET /healthz``, ``GET /metrics``, ``GET /openapi.json``.

One event (a JSON object) gets one decision; a JSON array of events gets a
list of decisions in the same order. Bad input is answered, never crashed
on: 400 with every problem and the field at fault (``{"errors": [{"index",
"field", "error"}]}``), 413 for a body over ``max_body_bytes`` or a list
over ``max_events``; 404 and 405 in the same form. The same
:class:`streams.guard.Guard` as in process, so the decisions are the same.

With a token (:class:`HttpSecurity`), every path but ``/healthz`` needs the
header ``Authorization: Bearer <token>`` (compared in constant time), else
401; with a certificate and key, the server speaks TLS only.

One client cannot hold the others: a long list of events (more than
``CHUNK_EVENTS``, or a body over ``HEAVY_BYTES``) is parsed, decided and its
answer encoded in a process of its own (:mod:`.http_heavy`: a guard of its
own, the same config, so the same decisions), while the event loop answers
the other requests; at most ``MAX_HEAVY`` such lists are in work at once
(another gets 503 with ``Retry-After``); a body over the cap is read and discarded up to
``LINGER_FACTOR`` times the cap (then 413, which the client can read: a
client that sends its whole body before reading sees the answer, not a
reset), past that the connection is closed after the 413.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ..detectors.types import Decision
from .guard import Guard, Rejection
from .http_heavy import HeavyWorker

if TYPE_CHECKING:
    import uvicorn

__all__ = ["GuardApp", "HttpSecurity", "build_http_app", "http_server", "listen", "serve_http", "openapi_document"]


@dataclass(frozen=True)
class HttpSecurity:
    """Who may call the HTTP guard, and over what: a bearer token, TLS certificate and key files."""

    token: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def __repr__(self) -> str:  # the token never shows in a log or a stack dump
        return f"HttpSecurity(token={'set' if self.token else None}, certfile={self.certfile!r})"


class GuardMetrics:
    """Prometheus series of the HTTP guard, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("inferwatch_guard_requests", "HTTP guard requests", ["code"], registry=self.registry)
        self.decisions = Counter("inferwatch_guard_decisions", "Guard decisions", ["action"], registry=self.registry)
        self.latency = Histogram("inferwatch_guard_request_seconds", "Time to answer one /v1/guard request",
                                 buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.05, 0.25, 1.0),
                                 registry=self.registry)


def build_http_app(guard: Guard, max_body_bytes: int = 8 << 20, max_events: int = 10_000,
                   token: str | None = None) -> GuardApp:
    """The ASGI application of ``guard``: serve it with :func:`http_server` (or any ASGI server)."""
    return GuardApp(guard, max_body_bytes, max_events, token)


HEAVY_BYTES = 64 << 10  # a list body this long is parsed in the long-list process too
CHUNK_EVENTS = 256  # events of a list decided at a time (a longer list: in the long-list process)
MAX_HEAVY = 2  # lists of more than CHUNK_EVENTS events in work at once; more get 503
LINGER_FACTOR = 4  # an oversize body is read (and dropped) up to this many times the cap before the 413


class _ClientGone(Exception):
    """The client disconnected before its body was read: there is no one to answer."""


class GuardApp:
    """The HTTP guard as a bare ASGI application (served by uvicorn with httptools).

    No web framework: a request is routed on (method, path), its body read up
    to ``max_body_bytes`` and answered with one ``send`` of headers and one of
    body, so the server's cost per request stays small next to the guard's.
    """

    def __init__(self, guard: Guard, max_body_bytes: int = 8 << 20, max_events: int = 10_000,
                 token: str | None = None) -> None:
        self.guard, self.max_body_bytes, self.max_events = guard, max_body_bytes, max_events
        self.heavy = 0  # lists of events in work (see MAX_HEAVY)
        self._heavy_worker: HeavyWorker | None = None  # long lists' own process, started on first use
        self.authorization = f"Bearer {token}".encode() if token else None
        self.metrics = GuardMetrics()
        self.openapi = orjson.dumps(openapi_document())
        self.routes = {
            ("GET", "/healthz"): lambda: (200, JSON_TYPE, b'{"status":"ok"}'),
            ("GET", "/metrics"): lambda: (200, TEXT_TYPE, generate_latest(self.metrics.registry)),
            ("GET", "/openapi.json"): lambda: (200, JSON_TYPE, self.openapi),
        }

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return  # lifespan is switched off in http_server; nothing else is spoken here
        method, path = scope["method"], scope["path"]
        if self.authorization is not None and path != "/healthz" and not self._authorized(scope):
            self.metrics.requests.labels("401").inc()
            return await _respond(send, 401, JSON_TYPE, orjson.dumps({"errors": [_error(
                None, "missing or wrong bearer token (Authorization: Bearer <token>)")]}),
                [(b"www-authenticate", b'Bearer realm="inferwatch"')])
        if path == "/v1/guard" and method == "POST":
            started = time.perf_counter()
            try:
                body = await self._read_body(scope, receive)
            except _ClientGone:
                return
            extra = None
            if body is None:
                code, payload = 413, _too_large(self.max_body_bytes)
                if not await self._linger(scope, receive):
                    extra = [(b"connection", b"close")]
            else:
                code, payload, extra = await self._answer_soon(body)
            self.metrics.requests.labels(str(code)).inc()
            self.metrics.latency.observe(time.perf_counter() - started)
            encoded = payload if isinstance(payload, bytes) else _JSON.encode(payload)
            return await _respond(send, code, JSON_TYPE, encoded, extra)
        route = self.routes.get((method, path))
        if route is not None:
            return await _respond(send, *route())
        known = path == "/v1/guard" or any(p == path for _, p in self.routes)
        code, error = (405, f"{method} not allowed on {path}") if known else (404, f"no such path: {path}")
        await _respond(send, code, JSON_TYPE, orjson.dumps({"errors": [_error(None, error)]}))

    def _authorized(self, scope: dict) -> bool:
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, credentials = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(b"Bearer " + credentials.strip(),
                                                                     self.authorization or b"")

    async def _read_body(self, scope: dict, receive) -> bytes | None:
        """The whole body, or None when it is over the cap (stops reading as soon as it is)."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _linger(self, scope: dict, receive) -> bool:
        """Read and drop the rest of an oversize body, up to ``LINGER_FACTOR`` times the cap (so the 413 is
        read, not reset); False when it is longer than that or the client is gone (the connection closes)."""
        bound = LINGER_FACTOR * self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > bound):
                return False
        size = 0
        try:
            while size <= bound:
                message = await asyncio.wait_for(receive(), timeout=10.0)
                if message["type"] == "http.disconnect":
                    return False
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    return True
        except TimeoutError:
            pass
        return False

    async def _answer_soon(self, body: bytes) -> tuple[int, object, list | None]:
        """:meth:`_answer`; a long list (or a body over ``HEAVY_BYTES``) parsed, decided and its answer encoded
        in the long-list process, the event loop free meanwhile (see the module)."""
        if body[:1] != b"[" or len(body) < 4096:  # one event, or a short list: at once
            return (*self._answer(body), None)
        if len(body) < HEAVY_BYTES:
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                return (*self._answer(body), None)
            if not isinstance(parsed, list) or len(parsed) <= CHUNK_EVENTS or len(parsed) > self.max_events:
                return (*self._answer(body), None)
        if self.heavy >= MAX_HEAVY:
            return 503, {"errors": [_error(None, f"{MAX_HEAVY} long lists of events are in work already: "
                                                 "retry shortly")]}, [(b"retry-after", b"1")]
        self.heavy += 1
        try:
            answered = await self._heavy().answer(body)
        finally:
            self.heavy -= 1
        if answered is None:
            return 503, {"errors": [_error(None, "the long-list worker stopped: retry shortly")]}, \
                [(b"retry-after", b"1")]
        code, counts, encoded = answered
        for action, n in counts.items():
            self.metrics.decisions.labels(action).inc(n)
        return code, encoded, None

    def _heavy(self) -> HeavyWorker:
        if self._heavy_worker is None:
            self._heavy_worker = HeavyWorker(self.guard.config, self.max_body_bytes, self.max_events)
        return self._heavy_worker

    def _decided(self, decisions: list) -> tuple[int, object]:
        errors = [_error(i, d.error, d.field) for i, d in enumerate(decisions) if isinstance(d, Rejection)]
        if errors:
            return 400, {"errors": errors}
        for action, n in collections.Counter(d.action for d in decisions).items():
            self.metrics.decisions.labels(action).inc(n)
        return 200, decisions

    def _listed(self, events: list) -> tuple[int, object]:
        if len(events) > self.max_events:
            return 413, {"errors": [_error(None, f"{len(events)} events in one request, "
                                                 f"over the cap of {self.max_events}")]}
        decisions: list = []
        for lo in range(0, len(events), CHUNK_EVENTS):
            decisions += self.guard.check_batch(events[lo:lo + CHUNK_EVENTS])
        return self._decided(decisions)

    def _answer(self, body: bytes) -> tuple[int, object]:
        guard, metrics = self.guard, self.metrics
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if body.lstrip().startswith(b"{"):  # one event: the decoder names what is wrong (a bare NaN's field)
                (decision,) = guard.check_batch([body])
                if isinstance(decision, Rejection):
                    return 400, {"errors": [_error(None, decision.error, decision.field)]}
            events = _elements(body)  # a list with a bare NaN: each event judged, the one at fault named
            if events is not None:
                return self._listed(events)
            return 400, {"errors": [_error(None, f"invalid JSON: {exc}")]}
        if isinstance(parsed, dict):
            decision = guard.fast_check(parsed, size=len(body))
            if decision is None:
                (decision,) = guard.check_batch([body])
            if isinstance(decision, Rejection):
                return 400, {"errors": [_error(None, decision.error, decision.field)]}
            metrics.decisions.labels(decision.action).inc()
            return 200, decision
        if isinstance(parsed, list):
            return self._listed(parsed)
        return 400, {"errors": [_error(None, "expected an event (object) or a list of events, "
                                             f"got {type(parsed).__name__}")]}


JSON_TYPE = b"application/json"
_JSON = msgspec.json.Encoder()  # decisions are msgspec records; dicts and lists encode as they are
TEXT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


async def _respond(send, code: int, content_type: bytes, body: bytes, extra: list | None = None) -> None:
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def _elements(body: bytes) -> list[bytes] | None:
    """The events of a JSON array that is valid but for bare ``NaN`` / ``Infinity`` constants, as their own
    bytes (each then judged by the decoder); None if it is not such an array."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    decoder = json.JSONDecoder(parse_constant=lambda _: None)
    spaces = re.compile(r"\s*")
    pos = spaces.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        return None
    out: list[bytes] = []
    pos = spaces.match(text, pos + 1).end()  # type: ignore[union-attr]
    try:
        while not text.startswith("]", pos):
            _, end = decoder.raw_decode(text, pos)
            out.append(text[pos:end].encode())
            pos = spaces.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith(",", pos):
                pos = spaces.match(text, pos + 1).end()  # type: ignore[union-attr]
                if text.startswith("]", pos):  # a trailing comma is not JSON
                    return None
            elif not text.startswith("]", pos):
                return None
    except (json.JSONDecodeError, RecursionError):
        return None
    return out if not text[pos + 1:].strip() else None


def _too_large(cap: int) -> dict:
    return {"errors": [_error(None, f"request body too large: over {cap} bytes")]}


def _error(index: int | None, message: str, field: str | None = None) -> dict:
    """An error entry: which input, the field at fault (from the structured error), why."""
    return {"index": index, "field": field, "error": message}


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


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket: connections queue from here on, before the server runs."""
    host = host.strip("[]")  # an IPv6 address as written in a URL
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


MAX_CONNECTIONS = 1024  # connections and requests in progress; beyond, uvicorn answers 503


def http_server(guard: Guard, security: HttpSecurity | None = None) -> uvicorn.Server:
    """uvicorn with httptools and uvloop, no access log (the guard sits in a serving path); at most
    ``MAX_CONNECTIONS`` connections and requests at once (503 beyond).

    Idle keep-alive connections stay open 75 s (nginx's and aiohttp's default;
    uvicorn's own is 5 s): a client's pooled connection closed under it races
    with its next request, and that request fails. A request's head is
    bounded in size, header count and time, a body in time
    (:mod:`.http_limits`).
    """
    import uvicorn

    from .http_limits import LimitedHttpProtocol

    security = security or HttpSecurity()
    return uvicorn.Server(uvicorn.Config(build_http_app(guard, token=security.token), loop="uvloop",
                                         http=LimitedHttpProtocol, lifespan="off", access_log=False,
                                         log_level="warning",
                                         server_header=False, proxy_headers=False, timeout_keep_alive=75,
                                         limit_concurrency=MAX_CONNECTIONS,
                                         ssl_certfile=security.certfile, ssl_keyfile=security.keyfile))


def serve_http(guard: Guard, sock: socket.socket, security: HttpSecurity | None = None) -> None:
    """Serve on ``sock`` until stopped (SIGINT or SIGTERM)."""
    import gc

    gc.freeze()  # the config and compiled rules are long-lived: keep them out of collections
    http_server(guard, security).run(sockets=[sock])
