"""Guard latency, in one run: in process, over HTTP (open loop), topic to topic.

1. In process: ``Guard.check`` per event with 20 rules (range, not_null,
   allowed, 5 expressions; every action), p50/p99/p99.9; ``check_batch``
   throughput on the same events.
2. HTTP: ``inferwatch guard --http`` in its own process, and an open-loop
   load generator in another: requests are sent on a fixed schedule (1,000
   and 2,000 per second, 30 s each) whatever the replies, over a pool of
   keep-alive connections that grows when all are busy; latency is from
   send to full response. p50/p99/max and errors (non-200 or failed).
3. Topic to topic: ``inferwatch guard --from-topic`` on real Kafka, events
   produced at a steady 5,000/s for 20 s; latency = decision record's
   timestamp minus the event record's timestamp (both CreateTime, ms).

Usage: ``python benchmarks/guard.py [--skip-http] [--skip-topic] [--seconds 30]``.
Kafka from ``KAFKA_BOOTSTRAP_SERVERS`` or ``scripts/services``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from inferwatch.testing.services import listen_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import yaml  # noqa: E402

from inferwatch.detectors.config import MonitorConfig  # noqa: E402
from inferwatch.streams.guard import Guard  # noqa: E402

RULES = {"default": {
    "columns": {"amount": {"type": "numeric"}, "age": {"type": "numeric"}, "tenure_days": {"type": "numeric"},
                "n_tx_24h": {"type": "numeric"}, "score_a": {"type": "numeric"}, "country": {"type": "categorical"},
                "device": {"type": "categorical"}, "prediction": {"type": "numeric"}},
    "rules": [
        {"kind": "range", "field": "prediction", "min": 0, "max": 0.97, "action": "fix"},
        {"kind": "range", "field": "amount", "min": 0, "max": 5000, "action": "flag"},
        {"kind": "range", "field": "age", "min": 18, "max": 100, "action": "flag"},
        {"kind": "range", "field": "tenure_days", "min": 0, "action": "fix"},
        {"kind": "range", "field": "n_tx_24h", "max": 40, "action": "flag"},
        {"kind": "range", "field": "score_a", "min": -4, "max": 4, "action": "fix"},
        {"kind": "not_null", "field": "amount", "action": "block"},
        {"kind": "not_null", "field": "country", "action": "fix", "fix_value": "US"},
        {"kind": "not_null", "field": "tenure_days", "action": "flag"},
        {"kind": "not_null", "field": "prediction", "action": "fallback", "fallback_value": 0.5},
        {"kind": "allowed", "field": "country", "values": ["US", "GB", "DE", "FR", "ES", "IT"], "action": "fix",
         "fix_value": "US"},
        {"kind": "allowed", "field": "device", "values": ["ios", "android", "web"], "action": "flag"},
        {"kind": "allowed", "field": "age", "values": list(range(18, 101)), "action": "flag"},
        {"kind": "range", "field": "prediction", "min": 0, "action": "block"},
        {"kind": "range", "field": "amount", "max": 100000, "action": "block"},
        {"kind": "expression", "expression": 'amount > 2000 and country not in ["US", "GB"]', "action": "flag"},
        {"kind": "expression", "expression": "prediction > 0.9 and amount > 1000", "action": "fallback",
         "fallback_value": 0.9},
        {"kind": "expression", "expression": "n_tx_24h / (tenure_days + 1) > 5", "action": "flag"},
        {"kind": "expression", "expression": 'device == "web" and age < 21', "action": "flag"},
        {"kind": "expression", "expression": "score_a * 2 - prediction > 6 or amount is null", "action": "block"},
    ]}}


def events(n: int) -> list[dict]:
    from inferwatch.testing.synthetic import generate, to_lines

    return [orjson.loads(line) for line in to_lines(generate(n, seed=11))]


def in_process(evs: list[dict]) -> dict:
    guard = Guard(MonitorConfig.model_validate(RULES))
    assert len(guard.guards.for_model("x").rules) == 20
    for e in evs[:2000]:
        guard.check(e)
    gc.collect()
    times = np.empty(len(evs))
    clock = time.perf_counter_ns
    for i, e in enumerate(evs):
        t = clock()
        guard.check(e)
        times[i] = clock() - t
    raw = [orjson.dumps(e) for e in evs]
    batch_rate = 0.0
    for _ in range(3):  # best of three: the first call also loads compiled kernels
        started = time.perf_counter()
        guard.check_batch(raw)
        batch_rate = max(batch_rate, len(raw) / (time.perf_counter() - started))
    actions = {}
    for d in guard.check_batch(raw[:5000]):
        actions[d.action] = actions.get(d.action, 0) + 1
    us = times / 1e3
    return {"p50_us": np.percentile(us, 50), "p99_us": np.percentile(us, 99), "p999_us": np.percentile(us, 99.9),
            "check_per_s": len(evs) / (times.sum() / 1e9), "check_batch_per_s": batch_rate, "actions": actions}


# --- HTTP: open-loop load ---------------------------------------------------------------------------


class _Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.busy = reader, writer, False


async def _one(conn: _Conn, request: bytes, latencies: list, errors: list) -> None:
    sent = time.perf_counter()
    try:
        conn.writer.write(request)
        head = await conn.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await conn.reader.readexactly(length)
        latencies.append(time.perf_counter() - sent)
        if not head.startswith(b"HTTP/1.1 200"):
            errors.append(head.split(b"\r\n")[0])
    except Exception as exc:  # a failed request is an error to report, not a crash
        errors.append(repr(exc))
    finally:
        conn.busy = False


async def _open_loop(port: int, bodies: list[bytes], rate: float, seconds: float) -> dict:
    pool: list[_Conn] = []
    latencies: list[float] = []
    errors: list = []
    lags: list[float] = []
    tasks = set()
    requests = [b"POST /v1/guard HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]
    for _ in range(16):
        pool.append(_Conn(*await asyncio.open_connection("127.0.0.1", port)))
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(time.perf_counter() - due)
        conn = next((c for c in pool if not c.busy), None)
        if conn is None:
            conn = _Conn(*await asyncio.open_connection("127.0.0.1", port))
            pool.append(conn)
        conn.busy = True
        task = asyncio.create_task(_one(conn, requests[i % len(requests)], latencies, errors))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.sleep(0.01)
    for c in pool:
        c.writer.close()
    ms = np.asarray(latencies) * 1e3
    return {"rate": rate, "requests": total, "answered": len(latencies), "errors": len(errors),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "connections": len(pool),
            "send_lag_p99_ms": float(np.percentile(np.asarray(lags) * 1e3, 99))}


def http(evs: list[dict], seconds: float, tmp: Path) -> list[dict]:
    config = tmp / "guard-rules.yaml"
    config.write_text(yaml.safe_dump(RULES))
    port = listen_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                             "--http", f"127.0.0.1:{port}"], cwd=ROOT, stderr=subprocess.PIPE)
    try:
        proc.stderr.readline()
        _wait_port(port)
        bodies = [orjson.dumps(e) for e in evs[:5000]]
        # the generator runs in its own process, so it does not share a core with the server
        out = []
        for rate in (200, 1000, 2000):
            length = 3 if rate == 200 else seconds
            res = subprocess.run([sys.executable, __file__, "--generator", str(port), str(rate), str(length)],
                                 input=b"\n".join(bodies), capture_output=True, check=True)
            if rate != 200:  # 200/s for 3 s warms the server up
                out.append(orjson.loads(res.stdout))
        bodies_file = tmp / "bodies.jsonl"
        bodies_file.write_bytes(b"\n".join(bodies) + b"\n")
        for rate in (1000, 2000):
            out.append(_wrk(port, bodies_file, rate, seconds))
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


WRK_CONNECTIONS = 40


def _wrk(port: int, bodies: Path, rate: float, seconds: float) -> dict:
    """Debian's wrk (C, epoll) with ``guard_wrk.lua``: each of 40 connections pauses 1000 * 40 / rate ms
    on average (uniformly drawn) between a reply and its next request, so the pace holds unless a reply
    takes about that long."""
    pause = 1000 * WRK_CONNECTIONS / rate
    res = subprocess.run(["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds:.0f}s", "--timeout", "5s",
                          "-s", str(HERE / "guard_wrk.lua"), f"http://127.0.0.1:{port}", "--", str(bodies),
                          f"{pause:.3f}"], capture_output=True, check=True, text=True)
    r = orjson.loads(res.stdout.strip().splitlines()[-1])
    return {"tool": "wrk", "rate": rate, "achieved": r["requests"] / r["seconds"], "requests": r["requests"],
            "errors": r["errors"], "p50_ms": r["p50_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3,
            "max_ms": r["max_us"] / 1e3}


def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the guard did not start")



# --- topic to topic ---------------------------------------------------------------------------------


def topic(evs: list[dict], seconds: float, tmp: Path) -> dict:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from inferwatch.testing.services import create_topic, services_up, unique

    env, _ = services_up()
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    source = unique("bench-guard")
    create_topic(bootstrap, source, 1)
    config = tmp / "guard-rules.yaml"
    config.write_text(yaml.safe_dump(RULES))
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                             "--from-topic", source, "--to-topic", f"{source}-out", "--dead-letter-topic",
                             f"{source}-dead", "--app-id", unique("guard"), "--web-port", str(listen_port())],
                            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    rate = 5000
    try:
        warm = 2000
        for e in evs[:warm]:
            producer.send(source, orjson.dumps(e))
        producer.flush()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        out_tp = TopicPartition(f"{source}-out", 0)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if consumer.partitions_for_topic(out_tp.topic) and consumer.end_offsets([out_tp])[out_tp] >= warm:
                break
            time.sleep(0.2)
        total = int(rate * seconds)
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.send(source, orjson.dumps(evs[warm + i % (len(evs) - warm)]))
        producer.flush()
        sent_seconds = time.perf_counter() - start
        in_tp = TopicPartition(source, 0)
        while consumer.end_offsets([out_tp])[out_tp] < warm + total and time.monotonic() < deadline + 300:
            time.sleep(0.2)
        produced = _timestamps(consumer, in_tp, warm, warm + total)
        decided = _timestamps(consumer, out_tp, warm, warm + total)
        lat = decided - produced
        return {"rate": rate, "achieved_rate": total / sent_seconds, "events": total,
                "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                "max_ms": float(lat.max())}
    finally:
        producer.close()
        proc.terminate()
        proc.wait(timeout=60)


def _timestamps(consumer, tp, first: int, end: int) -> np.ndarray:
    consumer.assign([tp])
    consumer.seek(tp, first)
    out = np.empty(end - first)
    got = 0
    while got < len(out):
        for records in consumer.poll(timeout_ms=2000, max_records=10000).values():
            for r in records:
                if r.offset < end:
                    out[r.offset - first] = r.timestamp
                    got += 1
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generator":
        port, rate, seconds = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
        bodies = sys.stdin.buffer.read().split(b"\n")
        import uvloop

        print(orjson.dumps(uvloop.run(_open_loop(port, bodies, rate, seconds))).decode())
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-topic", action="store_true")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    evs = events(40_000)
    r = in_process(evs[:20_000])
    print(f"in process, 20 rules (5 expressions): check p50 {r['p50_us']:.1f} us, p99 {r['p99_us']:.1f} us, "
          f"p99.9 {r['p999_us']:.1f} us ({r['check_per_s']:,.0f} events/s); "
          f"check_batch {r['check_batch_per_s']:,.0f} events/s; actions on 5,000: {r['actions']}")
    if not args.skip_http:
        for h in http(evs, args.seconds, tmp):
            if h.get("tool") == "wrk":
                print(f"http wrk, 40 paced connections, {h['rate']:.0f} req/s x {args.seconds:.0f} s "
                      f"(achieved {h['achieved']:,.0f}/s): p50 {h['p50_ms']:.2f} ms, p99 {h['p99_ms']:.2f} ms, "
                      f"max {h['max_ms']:.1f} ms, errors {h['errors']} of {h['requests']}")
                continue
            print(f"http open loop {h['rate']:.0f} req/s x {args.seconds:.0f} s: p50 {h['p50_ms']:.2f} ms, "
                  f"p99 {h['p99_ms']:.2f} ms, max {h['max_ms']:.1f} ms, errors {h['errors']} of {h['requests']} "
                  f"(answered {h['answered']}; connections {h['connections']}; "
                  f"generator send lag p99 {h['send_lag_p99_ms']:.2f} ms)")
    if not args.skip_topic:
        t = topic(evs, min(args.seconds, 20.0), tmp)
        print(f"topic to topic at {t['rate']:,} events/s (achieved {t['achieved_rate']:,.0f}/s, "
              f"{t['events']:,} events): added latency p50 {t['p50_ms']:.0f} ms, p99 {t['p99_ms']:.0f} ms, "
              f"max {t['max_ms']:.0f} ms")


if __name__ == "__main__":
    main()
