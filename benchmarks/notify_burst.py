"""A burst of alerts to Alertmanager and a webhook: none lost, monitoring as fast as without (issue 18).

A stream of ``--models`` models (default 2,500), each with a warm-up of 200
events and then a unit bug on ``amount`` and a new ``country``: about four
alert records a model (two alerts, two incident records), over 10,000 in
all, within seconds of event time. ``inferwatch replay`` runs it twice as
whole processes: without receivers, then with ``--webhook-url`` (a loopback
receiver in this process, counting what it gets) and ``--alertmanager-url``
(Debian's Alertmanager started by ``scripts/services alertmanager-up``,
grouping by ``incident_id`` and notifying a second loopback receiver).

Prints: the records written, the records the webhook received (and any
missing by ``alert_id``), the alerts Alertmanager holds against the label
sets expected, the incident groups it notified, and the monitoring rate
(the replay's own events/s, from its summary) and wall time with and
without receivers.

Usage: ``python benchmarks/notify_burst.py [--models 2500]`` (needs
``scripts/services install`` once: prometheus-alertmanager).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
WARMUP, AFTER = 200, 100


class Receiver:
    """A loopback HTTP receiver keeping every JSON body posted to it."""

    def __init__(self) -> None:
        bodies: list = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the standard library's name)
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


def stream(path: Path, models: int) -> None:
    rng = np.random.default_rng(7)
    lines, t0 = [], 1_793_491_200.0
    for step in range(WARMUP + AFTER):
        for m in range(models):
            amount = float(np.exp(rng.normal(3.0, 1.0)))
            country = ["US", "GB", "DE", "FR"][int(rng.integers(4))]
            if step >= WARMUP:
                amount, country = amount * 100, ("BR" if step % 4 == 0 else country)
            lines.append(orjson.dumps({
                "event_id": f"m{m}-{step}", "model": f"model-{m:05d}",
                "timestamp": t0 + step + m / models, "features": {"amount": round(amount, 2), "country": country}}))
    path.write_bytes(b"\n".join(lines) + b"\n")


def replay(path: Path, config: Path, *extra: str) -> tuple[float, float, list[dict]]:
    """(wall seconds, the summary's events/s, alert records) of one whole ``inferwatch replay`` process."""
    exe = shutil.which("inferwatch") or sys.exit("inferwatch is not on the PATH: pip install -e . first")
    t0 = time.perf_counter()
    res = subprocess.run([exe, "replay", "--file", str(path), "--config", str(config), *extra],
                         capture_output=True, check=True)
    wall = time.perf_counter() - t0
    rate = float(re.search(rb"([\d,]+) events/s", res.stderr).group(1).replace(b",", b""))
    return wall, rate, [orjson.loads(line) for line in res.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=2500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="inferwatch-burst-"))
    events, config = folder / "burst.jsonl", folder / "monitor.yaml"
    stream(events, args.models)
    config.write_text(f"default:\n  warmup_events: {WARMUP}\nlimits:\n  max_models: {args.models}\n")
    webhook, paged = Receiver(), Receiver()
    up = subprocess.run([str(ROOT / "scripts" / "services"), "alertmanager-up", paged.url], capture_output=True,
                        text=True, check=True)
    alertmanager = re.search(r"ALERTMANAGER_URL=(\S+)", up.stdout).group(1)
    try:
        wall0, rate0, records = replay(events, config)
        wall1, rate1, again = replay(events, config, "--webhook-url", webhook.url, "--alertmanager-url", alertmanager)
        received = [r for body in webhook.bodies for r in body]
        missing = {r["alert_id"] for r in records} - {r["alert_id"] for r in received}
        expected = {(r["model"], r["feature"] or "", r["detector"], r["incident_id"]) for r in records}
        deadline = time.monotonic() + 60
        while True:  # Alertmanager takes the posts at once; its groups notify after group_wait
            with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts") as answer:
                held = {(a["labels"]["model"], a["labels"].get("feature", ""), a["labels"]["detector"],
                         a["labels"]["incident_id"]) for a in json.loads(answer.read())}
            groups = {g["groupLabels"]["incident_id"] for body in paged.bodies for g in [body]}
            incidents = {r["incident_id"] for r in records}
            if (held >= expected and groups >= incidents) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        subprocess.run([str(ROOT / "scripts" / "services"), "alertmanager-down"], check=False)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.models:,} models, {len(records):,} alert records ({len(incidents):,} incidents); the second run "
          f"wrote the same: {again == records}")
    print(f"webhook: {len(received):,} records received in {len(webhook.bodies)} posts, {len(missing)} missing")
    print(f"alertmanager: {len(held & expected):,} of {len(expected):,} expected alerts held; "
          f"{len(groups & incidents):,} of {len(incidents):,} incidents notified as groups")
    print(f"monitoring: {rate0:,.0f} events/s without receivers, {rate1:,.0f} with (ratio {rate1 / rate0:.2f}); "
          f"whole process {wall0:.2f} s and {wall1:.2f} s (posting included)")


if __name__ == "__main__":
    main()
