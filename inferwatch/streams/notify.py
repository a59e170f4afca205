"""Alerts to Prometheus Alertmanager (API v2) and to webhooks, besides the alerts topic or file.

**Alertmanager** (``--alertmanager-url URL``): each alert record becomes an
Alertmanager alert, posted to ``URL/api/v2/alerts``:

* labels ``alertname`` (``inferwatch_<kind>``), ``model``, ``feature``,
  ``detector``, ``kind``, ``severity``, ``segment`` (``tag=value``, empty
  for the whole model) and ``incident_id``: the same for an episode's
  firing and resolved alerts (a resolved alert takes the severity its
  firing had), so Alertmanager resolves what it opened, and can group by
  ``incident_id`` (one notification per incident);
* annotations ``summary`` (the message), ``score``, ``threshold``,
  ``alert_id``, ``event_id``, ``event_time`` and ``position``;
* ``startsAt`` is the firing's event time; a resolved alert carries
  ``endsAt`` (its own event time). A firing alert has no ``endsAt``:
  Alertmanager keeps it active for its ``resolve_timeout`` (5 min by default).

**Webhook** (``--webhook-url URL``): each batch of alert records is posted as
a JSON array; with ``INFERWATCH_WEBHOOK_SECRET`` set, the header
``X-Inferwatch-Signature: sha256=<hex HMAC of the body>`` signs it.

Both retry with back-off while the receiver is unreachable or answers 5xx
(one log line per outage), for at most ``patience`` seconds, then raise
:class:`~inferwatch.errors.ServiceUnavailable`: an outage is waited for, not
swallowed. A 4xx answer is a configuration error, raised at once.

>>> alertmanager_alert({"alert_id": "a1", "status": "firing", "model": "m", "feature": "amount",
...     "segment": None, "incident_id": "i1", "kind": "drift", "detector": "mean", "severity": "critical",
...     "score": 30.0, "threshold": 24.5, "event_time": "2026-11-01T00:03:40.060Z", "position": 12012,
...     "event_id": "e-1", "message": "amount moved"})["labels"]["alertname"]
'inferwatch_drift'
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import os
import time
import urllib.error
import urllib.request

import orjson

from ..errors import ConfigError, ServiceUnavailable
from .outage import outage
from .secret_url import SecretURL, reveal

__all__ = ["AlertmanagerSink", "Notifier", "WebhookSink", "alertmanager_alert"]

log = logging.getLogger("inferwatch")


def _episode(record: dict) -> tuple:
    segment = record.get("segment") or {}
    return record["model"], record.get("feature"), record["detector"], tuple(sorted(segment.items())), \
        record.get("incident_id")


def alertmanager_alert(record: dict, severity: str | None = None) -> dict:
    """The Alertmanager API v2 alert of one inferwatch alert record."""
    segment = ",".join(f"{k}={v}" for k, v in sorted((record.get("segment") or {}).items()))
    labels = {"alertname": f"inferwatch_{record['kind']}", "model": record["model"],
              "feature": record.get("feature") or "", "detector": record["detector"], "kind": record["kind"],
              "severity": severity or record["severity"], "segment": segment,
              "incident_id": record.get("incident_id") or ""}
    annotations = {"summary": record["message"], "score": str(record["score"]),
                   "threshold": str(record["threshold"]), "alert_id": record["alert_id"],
                   "event_id": record.get("event_id", ""), "event_time": record["event_time"],
                   "position": orjson.dumps(record.get("position")).decode()}
    out = {"labels": labels, "annotations": annotations}
    if record["status"] == "resolved":
        out["endsAt"] = record["event_time"]
    else:
        out["startsAt"] = record["event_time"]
    return out


class _Poster:
    def __init__(self, url: str, what: str, patience: float) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{what} URL must start with http:// or https://, got {url!r}")
        self.url, self.what, self.patience = SecretURL(url), what, patience
        self.service = outage(what)

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> None:
        deadline, delay = time.monotonic() + self.patience, 0.2
        while True:
            request = urllib.request.Request(reveal(self.url), data=body, method="POST",
                                             headers={"Content-Type": "application/json", **(headers or {})})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
                self.service.back()
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code not in (408, 429):  # a timeout or "too many" is worth a retry
                    raise ConfigError(f"{self.what} at {self.url} refused the alerts: HTTP {exc.code} "
                                      f"{exc.read()[:200].decode(errors='replace')}") from None
                problem = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
            self.service.lost(problem)
            if time.monotonic() + delay > deadline:
                raise ServiceUnavailable(f"{self.what} at {self.url} unreachable for {self.patience:.0f} s "
                                         f"({problem})")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


class AlertmanagerSink:
    """Posts alert records to Alertmanager's API v2, a batch per call."""

    def __init__(self, url: str, patience: float = 120.0) -> None:
        self.poster = _Poster(url.rstrip("/") + "/api/v2/alerts", "alertmanager", patience)
        self.open: dict[tuple, dict] = {}  # an open episode's firing alert: re-sent, and its severity resolves it

    def send(self, records: list[dict]) -> int:
        alerts, now_open = [], dict(self.open)
        for record in records:
            key = _episode(record)
            if record["status"] == "firing":
                before = now_open.get(key)
                if before is not None and before["severity"] != record["severity"]:  # an incident record's
                    # severity rose: the label set changed, so the old one is ended rather than left to expire
                    alerts.append(alertmanager_alert({**before, "status": "resolved",
                                                      "event_time": record["event_time"]}))
                now_open[key] = record
                alerts.append(alertmanager_alert(record))
            else:
                firing = now_open.pop(key, None)
                alerts.append(alertmanager_alert(record, firing["severity"] if firing else None))
        if alerts:
            self.poster.post(orjson.dumps(alerts))
        self.open = now_open  # only once posted: a retry after an outage pairs them again
        return len(alerts)

    def resend(self) -> int:
        """The open episodes' firing alerts again: Alertmanager resolves an alert not re-sent within its
        ``resolve_timeout``."""
        alerts = [alertmanager_alert(record) for record in self.open.values()]
        if alerts:
            self.poster.post(orjson.dumps(alerts))
        return len(alerts)


class WebhookSink:
    """Posts alert records as a JSON array, signed when ``INFERWATCH_WEBHOOK_SECRET`` is set."""

    def __init__(self, url: str, patience: float = 120.0, secret: str | None = None) -> None:
        self.poster = _Poster(url, "webhook", patience)
        secret = secret if secret is not None else os.environ.get("INFERWATCH_WEBHOOK_SECRET")
        self.secret = secret.encode() if secret else None

    def send(self, records: list[dict]) -> int:
        if not records:
            return 0
        body = orjson.dumps(records)
        headers = {}
        if self.secret is not None:
            headers["X-Inferwatch-Signature"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        self.poster.post(body, headers)
        return len(records)


class Notifier:
    """Posts alerts from a thread of its own, so monitoring never waits on a receiver.

    A bounded queue of batches (``capacity`` alerts): when a receiver is away
    longer than the queue lasts, new alerts are dropped and counted
    (``dropped``), never the monitoring held back. Each receiver is retried
    while it is away (one log line per outage). Alertmanager's open firing
    alerts are re-sent every ``resend_seconds``. The alerts topic stays the
    durable record: a notification lost in a crash is not sent again.
    """

    def __init__(self, sinks: list, capacity: int = 10_000, resend_seconds: float = 60.0) -> None:
        import queue
        import threading

        self.sinks, self.capacity, self.resend_seconds = sinks, capacity, resend_seconds
        self.queue: queue.Queue = queue.Queue()
        self.queued = 0
        self.dropped = 0
        self.sent = 0
        self._lock = threading.Lock()
        self._empty = queue.Empty
        self._thread = threading.Thread(target=self._run, name="inferwatch-notify", daemon=True)
        self._thread.start()

    def offer(self, records: list[dict]) -> None:
        if not records:
            return
        with self._lock:
            if self.queued + len(records) > self.capacity:
                self.dropped += len(records)
                if self.dropped == len(records):
                    log.warning("notifications: the receivers are behind, %d queued; new alerts are dropped "
                                "(counted) until they catch up", self.queued)
                return
            self.queued += len(records)
        self.queue.put(records)

    def _run(self) -> None:
        next_resend = time.monotonic() + self.resend_seconds
        while True:
            try:
                records = self.queue.get(timeout=max(0.0, next_resend - time.monotonic()))
            except self._empty:
                records = None
            if records is None or time.monotonic() >= next_resend:
                for sink in self.sinks:
                    if isinstance(sink, AlertmanagerSink):
                        self._deliver(sink.resend)
                next_resend = time.monotonic() + self.resend_seconds
            if records is not None:
                for sink in self.sinks:
                    self._deliver(lambda sink=sink, records=records: sink.send(records))
                with self._lock:
                    self.queued -= len(records)
                    self.sent += len(records)
                self.queue.task_done()

    def _deliver(self, call) -> None:
        while True:
            try:
                call()
                return
            except ServiceUnavailable:  # still away after the sink's patience: keep trying, it is said already
                continue
            except ConfigError as exc:  # refused for good: said, and these alerts are not sent there
                log.error("notifications: %s", exc)
                return
            except Exception as exc:  # noqa: BLE001 (the thread must outlive anything a receiver does)
                log.error("notifications: %s: %s; these alerts are not posted", type(exc).__name__, exc)
                return
