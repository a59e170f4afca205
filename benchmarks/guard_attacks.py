"""The HTTP guard under hostile clients, on loopback: do legitimate requests still get served? (issue 20)

``inferwatch guard --http`` runs as its own process. A legitimate client
sends one event per request at ``--rate`` requests/s (open loop: each
request is due at its time, late ones count their wait) for ``--seconds``
while an attack runs; reported: share served (200), p50/p99 latency, and
the server's peak memory (VmHWM, its long-list process's included) and open connections. Attacks, one after
the other, each against a fresh server:

* ``none``: no attack (the baseline);
* ``long lists``: two clients sending 10,000-event lists back to back;
* ``idle connections``: 500 connections opened and left silent;
* ``slow headers``: 50 connections sending a header line every 100 ms;
* ``endless header``: 4 connections each sending one header of up to
  100 MiB, 64 KiB at a time, until the server closes them;
* ``many headers``: a request of 100,000 headers every 100 ms.

Attackers run in a process of their own (their threads would otherwise
hold the legitimate client's interpreter lock).

Usage: ``python benchmarks/guard_attacks.py [--seconds 12] [--rate 1000]`` (12 s: longer
than the 10 s the server gives a request's head).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inferwatch.testing.services import listen_port  # noqa: E402

RULES = "default:\n  rules:\n    - {kind: range, field: amount, min: 0, max: 10000, action: flag}\n"


def events() -> list[dict]:
    out = []
    for line in (ROOT / "examples" / "card_fraud_stream.jsonl").read_bytes().splitlines()[:12_000]:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("features"), dict) \
                and isinstance(event["features"].get("amount"), float):
            out.append(event)
    return out[:10_000]


def long_lists(port: int, stop: threading.Event, body: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        conn.request("POST", "/v1/guard", body=body, headers={"Content-Type": "application/json"})
        conn.getresponse().read()


def idle(port: int, stop: threading.Event, n: int = 500) -> None:
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    stop.wait()
    for s in held:
        s.close()


def slow_headers(port: int, stop: threading.Event, n: int = 50) -> None:
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    for s in held:
        s.sendall(b"POST /v1/guard HTTP/1.1\r\nHost: x\r\n")
    while not stop.wait(0.1):
        for s in held:
            try:
                s.sendall(b"X-a: b\r\n")
            except OSError:
                pass
    for s in held:
        s.close()


def endless_header(port: int, stop: threading.Event) -> None:
    chunk = b"a" * 65536
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/guard HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(1600):  # 100 MiB
                if stop.is_set():
                    break
                s.sendall(chunk)
    except OSError:  # closed by the server
        pass
    stop.wait()


def many_headers(port: int, stop: threading.Event) -> None:
    request = b"POST /v1/guard HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100_000))
    while not stop.wait(0.1):
        try:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(request + b"Content-Length: 2\r\n\r\n{}")
                s.recv(4096)
        except OSError:
            continue


def legitimate(port: int, event: bytes, rate: float, seconds: float) -> tuple[int, int, list[float]]:
    """(sent, served, latencies): one request every 1/rate s, each timed from when it was due."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    start, n, served, latencies = time.perf_counter(), int(rate * seconds), 0, []
    for i in range(n):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        try:
            conn.request("POST", "/v1/guard", body=event, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            served += response.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        latencies.append(time.perf_counter() - due)
    return n, served, latencies


def _peak_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def server_figures(pid: int) -> tuple[float, int]:
    """(peak resident MiB of the server and its child processes (the long-list worker), open TCP connections
    of the server)."""
    hwm = _peak_mib(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                hwm += _peak_mib(int(child))
            except FileNotFoundError:
                pass
    sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            sockets += "socket" in str(fd.readlink())
        except FileNotFoundError:  # closed meanwhile
            pass
    return hwm, sockets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--only", action="append", help="run only this attack (again for more)")
    args = parser.parse_args()
    sample = events()
    body, one = orjson.dumps(sample), orjson.dumps(sample[0])
    attacks = {"none": None, "long lists": lambda p, s: [long_lists(p, s, body) for _ in range(1)],
               "idle connections": idle, "slow headers": slow_headers, "endless header": endless_header,
               "many headers": many_headers}
    config = Path(tempfile.mkdtemp()) / "rules.yaml"
    config.write_text(RULES)
    print(f"legitimate client: {args.rate:.0f} requests/s for {args.seconds:g} s, one event each")
    for name, attack in attacks.items():
        if args.only and name not in args.only:
            continue
        port = listen_port()
        proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                                 "--http", f"127.0.0.1:{port}"], cwd=ROOT, stderr=subprocess.PIPE)
        assert b"serving" in proc.stderr.readline()
        legitimate(port, one, 200, 0.5)  # the first calls load the compiled kernels
        forked = multiprocessing.get_context("fork")
        stop, threads = forked.Event(), []
        if attack is not None:
            clients = 2 if name == "long lists" else 4 if name == "endless header" else 1
            threads = [forked.Process(target=attack, args=(port, stop), daemon=True) for _ in range(clients)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # the attack is under way before the measurement starts
        sent, served, latencies = legitimate(port, one, args.rate, args.seconds)
        hwm, sockets = server_figures(proc.pid)
        stop.set()
        for t in threads:
            t.join(timeout=70)
        proc.terminate()
        proc.wait(timeout=30)
        p50, p99 = np.percentile(np.array(latencies) * 1e3, [50, 99])
        print(f"{name:17} served {served:,} of {sent:,} ({served / sent:.1%}); p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
              f"server peak {hwm:.0f} MiB, {sockets} sockets open at the end")


if __name__ == "__main__":
    main()
