"""Fault injection against real Kafka and Redis: nothing lost, nothing counted twice, nothing stuck or silent.

``python benchmarks/faults.py [--events 40000] [--kills 20] [--redis-restarts 5] [--broker-restarts 5]``

Needs the local services of ``scripts/services`` (it stops and starts the
broker, so ``KAFKA_BOOTSTRAP_SERVERS`` must not point elsewhere) and runs its
own Redis, with AOF, so it can restart it. Two phases, each with two workers
on a 4-partition topic: events keyed by model (``--keyed-by-model``), then not
keyed at all (routed by model, merged in event time). The
stream holds a hostile corpus mixed in (a 1,000,000-byte invalid message,
epoch-millisecond timestamps, a deeply nested array, duplicate keys, empty
messages, a 900 KB model name). During each phase, at random moments:
``kill -9`` of a worker (restarted at once), Redis restarts (AOF kept; the
last one empty, with every worker stopped), broker restarts. Redis restarted
empty is a lost state: the workers must stop naming it, and are then
restarted with ``--on-lost-state resume-earliest``. A last phase deletes the
topic and creates it again with fewer events: the worker must stop naming
it, then resume. The script prints, per phase: events lost, counted twice,
partitions stuck, unexpected crashes, silent stalls (30 s with work waiting,
every worker alive, no outage going on and no progress) and the lost-state
cases the logs named. Target: all 0, every case named.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from inferwatch.detectors.config import MonitorConfig
from inferwatch.streams.pipeline import Pipeline
from inferwatch.streams.state_store import read_partitions
from inferwatch.testing.services import ROOT, create_topic, listen_port, services_up, unique
from inferwatch.testing.synthetic import generate, to_lines

SERVICES = str(ROOT / "scripts" / "services")
STATIC = True  # each worker restarts under its --instance-id, as a supervisor with stable names restarts it



def hostile() -> list[bytes]:
    ms = {"event_id": "ms-1", "model": "card-fraud", "timestamp": 1_793_491_200_000,
          "features": {"amount": 10.0, "country": "US"}, "prediction": 0.1}
    return [
        b"{" + b"x" * 999_998 + b"}",  # oversize, invalid: its dead letter is over the broker's default limit
        orjson.dumps(ms),  # epoch milliseconds: a valid event
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
        b'{"event_id":"dup","model":"card-fraud","model":"card-fraud","timestamp":1793491200,"features":{"amount":1}}',
        b"",  # an empty message
        orjson.dumps({"event_id": "huge", "model": "m" * 900_000, "timestamp": 1793491200, "features": {}}),
    ]


def stream(n: int, rng: random.Random) -> list[bytes]:
    lines = to_lines(generate(n, seed=rng.randrange(1 << 30)), first_id=0)
    models = (b'"model":"card-fraud-eu"', b'"model":"card-fraud-us"', b'"model":"card-fraud"')
    lines = [line.replace(b'"model":"card-fraud"', models[i % 3]) for i, line in enumerate(lines)]
    for bad in hostile():
        lines.insert(rng.randrange(len(lines)), bad)
    return lines


class Feed:
    """The stream, produced chunk by chunk while the faults go on, so they hit a worker with work to do."""

    def __init__(self, bootstrap: str, topic: str, values: list[bytes], keyed: bool, chunks: int) -> None:
        from confluent_kafka import Producer

        self.bootstrap, self.topic, self.values, self.keyed = bootstrap, topic, values, keyed
        self.producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000, "linger.ms": 5,
                                  "partitioner": "murmur2_random", "message.timeout.ms": 600_000,
                                  "log_level": 0})  # its retries through the broker restarts are expected
        self.size = -(-len(values) // chunks)
        self.sent = 0
        self.ends: dict[int, int] = {}  # partition -> offset after the last acknowledged record
        self.valid = 0  # events among the values sent, as the pipeline counts them
        self.sample = values[:300]

    def _acked(self, error, message) -> None:
        assert error is None, error
        p = message.partition()
        self.ends[p] = max(self.ends.get(p, 0), message.offset() + 1)

    def more(self) -> None:
        """Produce the next chunk (waiting for the acks: a broker restart delays it, loses nothing)."""
        chunk = self.values[self.sent:self.sent + self.size]
        for value in chunk:
            key = None
            if self.keyed:
                try:
                    key = str(orjson.loads(value).get("model", ""))[:64].encode()
                except (orjson.JSONDecodeError, AttributeError):
                    key = b"?"
            self.producer.produce(self.topic, value, key=key, on_delivery=self._acked)
            self.producer.poll(0)
        assert self.producer.flush(600) == 0
        self.sent += len(chunk)
        self.valid += Pipeline.build(MonitorConfig(), self.sample).step(chunk, messages=True).events

    @property
    def done(self) -> bool:
        return self.sent >= len(self.values)

    def read_back(self) -> dict[int, list[bytes]]:
        """What each partition received, in order."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("read"),
                             "enable.auto.commit": False, "fetch.message.max.bytes": 4_000_000})
        parts: dict[int, list[bytes]] = {}
        try:
            meta = consumer.list_topics(self.topic, timeout=30).topics[self.topic]
            for p in meta.partitions:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)
                consumer.assign([TopicPartition(self.topic, p, lo)])
                got: list[bytes] = []
                while len(got) < hi - lo:
                    got += [m.value() or b"" for m in consumer.consume(1000, timeout=5) if m.error() is None]
                parts[p] = got
        finally:
            consumer.close()
        return parts


def produce(bootstrap: str, topic: str, values: list[bytes], keyed: bool) -> dict[int, list[bytes]]:
    """Produce every value at once; return what each partition received, in order."""
    feed = Feed(bootstrap, topic, values, keyed, 1)
    feed.more()
    return feed.read_back()


def expected_events(parts: dict[int, list[bytes]]) -> dict[int, int]:
    """Valid events per partition, as the pipeline counts them (decoded once, offline)."""
    sample = [v for values in parts.values() for v in values[:300]]
    config = MonitorConfig()
    return {p: Pipeline.build(config, sample).step(values, messages=True).events for p, values in parts.items()}


class OwnRedis:
    def __init__(self, folder: Path) -> None:
        self.port, self.dir, self.proc = listen_port(), folder, None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, empty: bool = False) -> None:
        if empty:
            for f in self.dir.rglob("*"):
                if f.is_file():
                    f.unlink()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            if subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() == b"PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


class Workers:
    """Two ``inferwatch worker`` processes of one app id; logs kept per start."""

    def __init__(self, bootstrap: str, redis: OwnRedis, topic: str, app_id: str, folder: Path,
                 extra: tuple[str, ...] = ()) -> None:
        self.bootstrap, self.redis, self.topic, self.app_id, self.dir = bootstrap, redis, topic, app_id, folder
        self.extra = extra
        self.procs: list[subprocess.Popen | None] = [None, None]
        self.logs: list[Path] = []
        self.policy = "fail"
        self.static = STATIC

    def start(self, i: int) -> None:
        log = self.dir / f"{self.app_id}-{i}-{len(self.logs)}.log"
        self.logs.append(log)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "REDIS_URL": self.redis.url}
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "inferwatch", "worker", "--events-topic", self.topic, "--app-id", self.app_id,
             "--alerts-topic", f"{self.topic}-alerts", "--dead-letters-topic", f"{self.topic}-dead",
             "--batch-size", "2000", "--metrics-port", "0", "--web-port", str(listen_port()),
             "--on-lost-state", self.policy, *self.extra, *self.instance(i)], env=env, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def instance(self, i: int) -> tuple[str, ...]:
        return ("--instance-id", f"worker-{i}") if self.static else ()

    def start_all(self) -> None:
        for i in range(2):
            self.start(i)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def exited(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is not None]


def progress(redis: OwnRedis, app_id: str, topic: str, routed: bool = False) -> dict[int, tuple[int, int]]:
    """(next offset, events) per partition, as stored. Routed: the route stage's next offsets per partition
    (events 0), and under -1 the events of every model partition (detect stage)."""
    try:
        states = read_partitions(redis.url, app_id + (":route" if routed else ""))
        detected = read_partitions(redis.url, app_id) if routed else {}
    except ConnectionError:
        return {}
    out = {}
    for key, state in states.items():
        name, _, p = key.rpartition(":")
        if name == topic and not isinstance(state, Exception):
            out[int(p)] = (state.next_offset, 0 if routed else state.events)
    if routed:
        out[-1] = (0, sum(s.events for s in detected.values() if not isinstance(s, Exception)))
    return out


def run_phase(name: str, args, bootstrap: str, redis: OwnRedis, keyed: bool, rng: random.Random, folder: Path) -> dict:
    topic, app_id = unique(f"faults-{name}"), unique("app")
    create_topic(bootstrap, topic, 4)
    faults = (["kill"] * args.kills + ["redis"] * (args.redis_restarts - 1) + ["broker"] * args.broker_restarts)
    rng.shuffle(faults)
    faults.append("redis-empty")
    feed = Feed(bootstrap, topic, stream(args.events, rng), keyed, len(faults))
    ends = feed.ends
    # keyed by model: detection per partition; not keyed: routed by model, merged in event time
    routed = not keyed
    workers = Workers(bootstrap, redis, topic, app_id, folder,
                      ("--idle-seconds", "1") if routed else ("--keyed-by-model",))
    workers.start_all()
    report = {"crashes": 0, "stalls": 0, "named": 0, "lost_cases": 0}
    last, last_change, outage = None, time.monotonic(), False

    def watch(seconds: float) -> None:
        nonlocal last, last_change
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for i in workers.exited():
                code = workers.procs[i].returncode
                log = workers.logs[-1].read_text(errors="replace") if workers.logs else ""
                if code != -signal.SIGKILL:
                    if "--on-lost-state" in log and "state was lost" in log:
                        report["named"] += 1
                    else:
                        report["crashes"] += 1
                        print(f"  unexpected exit {code} of worker {i}:\n{log[-1500:]}")
                workers.start(i)
            now = progress(redis, app_id, topic, routed)
            if now != last:
                last, last_change = now, time.monotonic()
            waiting = any(now.get(p, (0, 0))[0] < end_ for p, end_ in ends.items()) or (
                routed and now.get(-1, (0, 0))[1] < feed.valid)
            if waiting and not outage and time.monotonic() - last_change > 30:
                report["stalls"] += 1
                print(f"  {time.strftime('%H:%M:%S')} silent stall: no progress for 30 s at {now}", flush=True)
                last_change = time.monotonic()
            time.sleep(0.2)

    for fault in faults:
        feed.more()
        watch(rng.uniform(0.5, 3.0))
        if args.verbose:
            now = progress(redis, app_id, topic, routed)
            print(f"  {time.strftime('%H:%M:%S')} {fault} (progress {now})", flush=True)
        if fault == "kill":
            i = rng.randrange(2)
            workers.kill(i)
            workers.start(i)
        elif fault == "redis":
            outage = True
            redis.stop()
            time.sleep(rng.uniform(0.5, 3))
            redis.start()
            outage = False
        elif fault == "broker":
            outage = True
            subprocess.run([SERVICES, "kafka-stop"], check=True, timeout=120)
            time.sleep(rng.uniform(0.5, 3))
            subprocess.run([SERVICES, "kafka-start"], check=True, timeout=180)
            outage = False
        elif fault == "redis-empty":
            workers.stop_all()
            redis.stop()
            redis.start(empty=True)
            report["lost_cases"] += 1
            before = report["named"]
            workers.procs = [None, None]
            workers.start_all()
            for _ in range(600):  # both must stop, naming the lost state
                if len(workers.exited()) == 2:
                    break
                time.sleep(0.2)
            for i in range(2):
                log = workers.logs[-2 + i].read_text(errors="replace")
                if workers.procs[i].returncode not in (None, 0) and "state was lost" in log:
                    report["named"] += 1
            report["named"] = before + min(report["named"] - before, 1)  # one case, however many workers said it
            workers.stop_all()
            workers.policy = "resume-earliest"
            workers.procs = [None, None]
            workers.start_all()
    while not feed.done:
        feed.more()
    parts = feed.read_back()
    expected = expected_events(parts)
    assert ends == {p: len(v) for p, v in parts.items() if v}, (ends, {p: len(v) for p, v in parts.items()})
    deadline = time.monotonic() + args.minutes * 60
    while time.monotonic() < deadline:
        now = progress(redis, app_id, topic, routed)
        if all(now.get(p, (0, 0))[0] >= end_ for p, end_ in ends.items()) and (
                not routed or now.get(-1, (0, 0))[1] >= sum(expected.values())):
            break
        watch(1.0)
    final = progress(redis, app_id, topic, routed)
    workers.stop_all()
    if routed:  # a model's events come from every partition: counted in total
        got, want = final.get(-1, (0, 0))[1], sum(expected.values())
        report["lost"], report["twice"] = max(0, want - got), max(0, got - want)
    else:
        report["lost"] = sum(max(0, expected[p] - final.get(p, (0, 0))[1]) for p in ends)
        report["twice"] = sum(max(0, final.get(p, (0, 0))[1] - expected[p]) for p in ends)
    report["stuck"] = sum(1 for p, end_ in ends.items() if final.get(p, (0, 0))[0] < end_)
    return report


def recreate_phase(bootstrap: str, redis: OwnRedis, rng: random.Random, folder: Path) -> dict:
    """The topic deleted and created again with fewer events: named, then resumed."""
    from kafka.admin import KafkaAdminClient

    topic, app_id = unique("faults-again"), unique("app")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, stream(3000, rng), keyed=False)
    workers = Workers(bootstrap, redis, topic, app_id, folder)
    workers.start(0)
    for _ in range(1200):
        if progress(redis, app_id, topic).get(0, (0, 0))[0] >= 3006:
            break
        time.sleep(0.1)
    time.sleep(6)  # the offset hint is committed every 5 s
    workers.stop_all()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()
    for _ in range(120):
        try:
            create_topic(bootstrap, topic, 1)
            break
        except Exception:
            time.sleep(0.5)
    parts = produce(bootstrap, topic, stream(1000, rng), keyed=False)
    workers.start(0)
    workers.procs[0].wait(timeout=120)
    named = int("past the end of the log" in workers.logs[-1].read_text(errors="replace"))
    workers.policy = "resume-earliest"
    workers.start(0)
    for _ in range(1200):  # the old state says 3006: wait for the fresh one to reach the new end exactly
        if progress(redis, app_id, topic).get(0, (0, 0))[0] == len(parts[0]):
            break
        time.sleep(0.1)
    final = progress(redis, app_id, topic).get(0, (0, 0))
    workers.stop_all()
    expected = expected_events(parts)[0]
    return {"named": named, "lost_cases": 1, "lost": max(0, expected - final[1]), "twice": max(0, final[1] - expected),
            "stuck": int(final[0] < len(parts[0])), "crashes": 0, "stalls": 0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--redis-restarts", type=int, default=5)
    parser.add_argument("--broker-restarts", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=6.0, help="per phase, at most, after the faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print each fault as it is injected")
    parser.add_argument("--phases", default="keyed,unkeyed,recreated", help="which phases to run, comma-separated")
    args = parser.parse_args()
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        sys.exit("unset KAFKA_BOOTSTRAP_SERVERS: this script stops and starts the local broker")
    env, _ = services_up()
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="inferwatch-faults-"))
    redis = OwnRedis(folder / "redis")
    redis.start()
    started = time.monotonic()
    rows = []
    try:
        chosen = args.phases.split(",")
        for name, keyed in (("keyed", True), ("unkeyed", False)):
            if name in chosen:
                rows.append((name, run_phase(name, args, bootstrap, redis, keyed, rng, folder)))
        if "recreated" in chosen:
            rows.append(("topic re-created", recreate_phase(bootstrap, redis, rng, folder)))
    finally:
        redis.stop()
    print(f"fault injection: {args.events:,} events + 6 hostile per phase, {args.kills} kill -9, "
          f"{args.redis_restarts} Redis restarts (the last empty), {args.broker_restarts} broker restarts; "
          f"{time.monotonic() - started:.0f} s; logs in {folder}")
    print(f"{'phase':18} {'lost':>5} {'twice':>6} {'stuck':>6} {'crashes':>8} {'stalls':>7} {'lost states named':>18}")
    for name, r in rows:
        print(f"{name:18} {r['lost']:5} {r['twice']:6} {r['stuck']:6} {r['crashes']:8} {r['stalls']:7} "
              f"{r['named']:>8} of {r['lost_cases']}")


if __name__ == "__main__":
    main()
