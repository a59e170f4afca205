"""Live worker figures on real Kafka and Redis, all in one run.

1. events/s of a raw aiokafka ``getmany`` loop that only parses JSON, versus
   ``inferwatch worker`` (state in Redis) on the same 1-partition topic;
2. one worker versus two on a 4-partition topic (4 models, keyed by model);
3. end-to-end alert latency, event produced to alert produced (Kafka record
   timestamps), at a steady 2,000 events/s on a stream whose ``amount``
   switches units every 3,000 events.

Usage: ``python benchmarks/worker.py [N_EVENTS [N_SCALING]]`` (defaults 200,000 and 2,000,000). Uses
``KAFKA_BOOTSTRAP_SERVERS``/``REDIS_URL`` or starts ``scripts/services``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from inferwatch.streams.state_store import read_partitions  # noqa: E402
from inferwatch.testing.datafile import events_file  # noqa: E402
from inferwatch.testing.services import create_topic, listen_port, services_up, unique  # noqa: E402


def progress(redis_url, app_id, topic) -> int:
    states = read_partitions(redis_url, app_id)
    return sum(s.next_offset for k, s in states.items() if k.startswith(f"{topic}:"))


def start_workers(env, topic, count, extra=()):
    app_id = unique("bench")
    procs = []
    for _ in range(count):
        port = listen_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferwatch", "worker", "--events-topic", topic, "--alerts-topic", f"{topic}-alerts",
             "--dead-letter-topic", f"{topic}-dead", "--app-id", app_id, "--metrics-port", str(port),
             "--web-port", str(listen_port()), *extra],
            env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.metrics_port = port
        procs.append(proc)
    return app_id, procs


def stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


def run_workers(env, topic, count, total, extra=()) -> float:
    """Start ``count`` workers on a filled topic; events/s from their first progress to the end."""
    app_id, procs = start_workers(env, topic, count, extra)
    try:
        start = None
        while True:
            done = progress(env["REDIS_URL"], app_id, topic)
            now = time.perf_counter()
            if start is None and done > 0:
                start, first = now, done
            if done >= total:
                return (total - first) / (now - start)
            time.sleep(0.05)
    finally:
        stop(procs)


def assigned(proc) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0
    line = [x for x in text.splitlines() if x.startswith("inferwatch_assigned_partitions ")]
    return int(float(line[0].split()[1])) if line else 0


def scaling_run(env, path, parts, count, warm=5_000) -> float:
    """``count`` workers join an empty topic; once every partition is owned, kcat fills it.

    Each partition first gets ``warm`` events and the workers count them:
    a worker's first batch also loads its compiled kernels (about a second),
    which is start-up, not throughput. Then the workers are paused (SIGSTOP)
    while the rest is produced, and resumed: events/s from the resume to nine
    tenths of the events (partitions may finish unevenly), so that neither the
    group's rebalance nor the producer is in the figure. The pause must stay
    under the workers' session timeout (10 s), or the group would rebalance.
    """
    import signal

    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique(f"scale{count}")
    create_topic(bootstrap, topic, parts)
    app_id, procs = start_workers(env, topic, count)
    try:
        while not (all(assigned(p) for p in procs) and sum(assigned(p) for p in procs) == parts):
            time.sleep(0.2)
        lines = [[x for x in path.with_suffix(f".p{p}").read_bytes().split(b"\n") if x.strip()] for p in range(parts)]
        total = sum(len(x) for x in lines)

        def produce(part_lines) -> None:
            producers = [subprocess.Popen(["kcat", "-b", bootstrap, "-t", topic, "-p", str(p), "-P", "-l"],
                                          stdin=subprocess.PIPE) for p in range(parts)]
            for proc, chunk in zip(producers, part_lines):
                proc.stdin.write(b"\n".join(chunk) + b"\n")
                proc.stdin.close()
            for proc in producers:
                proc.wait()

        produce([x[:warm] for x in lines])
        while progress(env["REDIS_URL"], app_id, topic) < warm * parts:
            time.sleep(0.05)
        paused = time.perf_counter()
        for proc in procs:
            proc.send_signal(signal.SIGSTOP)
        produce([x[warm:] for x in lines])
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
        pause = time.perf_counter() - paused
        cpu0, broker0 = cpu_seconds(procs), cpu_seconds(broker_processes())
        start, first = time.perf_counter(), progress(env["REDIS_URL"], app_id, topic)
        end = total - (total - first) // 10
        while (done := progress(env["REDIS_URL"], app_id, topic)) < end:
            time.sleep(0.02)
        wall = time.perf_counter() - start
        return ((done - first) / wall, pause, (cpu_seconds(procs) - cpu0) / wall,
                (cpu_seconds(broker_processes()) - broker0) / wall)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
        stop(procs)


def broker_processes() -> list:
    """The local Kafka broker's process, when this machine runs it (else nothing)."""
    import psutil

    return [p for p in psutil.process_iter(["cmdline"]) if "kafka.Kafka" in (p.info["cmdline"] or [])]


def cpu_seconds(procs) -> float:
    """User + system CPU seconds of the processes and their threads so far."""
    import psutil

    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)



async def raw_loop(bootstrap, topic, total) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=unique("raw"), max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        seen, start = 0, None
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for messages in batch.values():
                if start is None:
                    start, first = time.perf_counter(), len(messages)
                for m in messages:
                    orjson.loads(m.value)
                seen += len(messages)
        return (total - first) / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def split_partitions(path, parts: int) -> None:
    """``path.p0`` ... one file per partition, each its own model (events keyed by model)."""
    lines = [x for x in path.read_bytes().split(b"\n") if x]
    for p in range(parts):
        chunk = path.with_suffix(f".p{p}")
        chunk.write_bytes(b"\n".join(x.replace(b'"model":"card-fraud"', f'"model":"card-fraud-{p}"'.encode())
                                     for x in lines[p::parts]) + b"\n")


def latency(env, n=60_000, rate=2_000) -> list[float]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from inferwatch.testing.synthetic import generate, to_lines

    cols = generate(n, seed=99)
    flip = (np.arange(n) // 3_000) % 2 == 1
    cols.amount[flip] *= 100
    lines = to_lines(cols)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("latency")
    create_topic(bootstrap, topic, 1)
    config = HERE / "data" / "latency.yaml"
    config.write_text("default: {warmup_events: 3000}\n")
    app_id = unique("bench")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch", "worker", "--events-topic", topic, "--alerts-topic", f"{topic}-alerts",
         "--dead-letter-topic", f"{topic}-dead", "--app-id", app_id, "--metrics-port", "0", "--config", str(config),
         "--web-port", str(listen_port()), "--batch-size", "500"],
        env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        producer.send(topic, lines[0]).get(30)  # the worker is up once it has counted this one
        while progress(env["REDIS_URL"], app_id, topic) < 1:
            time.sleep(0.1)
        start = time.perf_counter()
        for i, line in enumerate(lines[1:], 1):
            while time.perf_counter() < start + i / rate:
                time.sleep(0.0005)
            producer.send(topic, line)
        producer.flush()
        while progress(env["REDIS_URL"], app_id, topic) < n:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    source = TopicPartition(topic, 0)
    consumer.assign([source])
    stamps = {}
    consumer.seek_to_beginning(source)
    while len(stamps) < n:
        for records in consumer.poll(timeout_ms=1000, max_records=10_000).values():
            for r in records:
                stamps[r.offset] = r.timestamp
    alerts_tp = TopicPartition(f"{topic}-alerts", 0)
    consumer.assign([alerts_tp])
    consumer.seek_to_beginning(alerts_tp)
    out = []
    for records in consumer.poll(timeout_ms=5000, max_records=10_000).values():
        for r in records:
            alert = orjson.loads(r.value)
            out.append(r.timestamp - stamps[alert["position"]["offset"]])
    consumer.close()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    scale_n = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
    env, _started = services_up()
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    path = events_file(n)

    one = unique("bench1")
    create_topic(bootstrap, one, 1)
    subprocess.run(["kcat", "-b", bootstrap, "-t", one, "-P", "-l", str(path)], check=True)
    raw = asyncio.run(raw_loop(bootstrap, one, n))
    rate_file = HERE / "data" / "faust_probe.rate"
    subprocess.run([sys.executable, str(HERE / "faust_probe.py"), bootstrap, one, str(n), str(rate_file)],
                   capture_output=True, timeout=600)
    bare = float(rate_file.read_text())
    worker = run_workers(env, one, 1, n)
    print(f"1 partition, {n:,} events: raw aiokafka getmany + orjson {raw:,.0f}/s, "
          f"bare Faust agent (no work) {bare:,.0f}/s, inferwatch worker {worker:,.0f}/s, "
          f"worker/raw {worker / raw:.2f} (target >= 0.5), worker/bare Faust {worker / bare:.2f}")

    big = events_file(scale_n)
    split_partitions(big, 4)
    (w1, pause1, cores1, broker1), (w2, pause2, cores2, broker2) = scaling_run(env, big, 4, 1), scaling_run(env, big, 4, 2)
    print(f"4 partitions, {scale_n:,} events: 1 worker {w1:,.0f}/s, 2 workers {w2:,.0f}/s, speed-up {w2 / w1:.2f} "
          f"(target >= 1.7)\n  cores busy: workers {cores1:.2f} / {cores2:.2f}, Kafka broker {broker1:.2f} / {broker2:.2f}; "
          f"workers paused {pause1:.1f} s / {pause2:.1f} s while kcat produced")

    lat = latency(env)
    if lat:
        print(f"alert latency over {len(lat)} alerts at 2,000 events/s: p50 {np.percentile(lat, 50):.0f} ms, "
              f"p99 {np.percentile(lat, 99):.0f} ms, max {max(lat):.0f} ms")


if __name__ == "__main__":
    main()
