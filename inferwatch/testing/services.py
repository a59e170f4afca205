"""Real Kafka and Redis for integration tests, started by ``scripts/services``.

Helpers that talk to them go through kcat (a third-party client) and
kafka-python, so the wire formats are checked by someone else's code.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: these helpers run from one


def services_up() -> tuple[dict[str, str], bool]:
    """(environment, started_here)."""
    preset = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("REDIS_URL"))
    out = subprocess.run([str(ROOT / "scripts" / "services"), "up"], capture_output=True, text=True, check=True,
                         timeout=600)
    env = dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
    return env, not preset


def services_down() -> None:
    subprocess.run([str(ROOT / "scripts" / "services"), "down"], check=True, timeout=120)


def listen_port() -> int:
    """A free TCP port for a server a test starts, chosen below the kernel's ephemeral range.

    A port the kernel handed out (bind to port 0) and closed again can be
    taken, before the server binds it, by any outgoing connection (a Kafka or
    Redis client): ephemeral ports come from the same range. A port below the
    range is never given to an outgoing connection. ``scripts/listen_port.py``
    picks it (``scripts/services`` uses it too).
    """
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "listen_port.py")], capture_output=True, text=True,
                         check=True, timeout=30)
    return int(out.stdout)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def kcat_produce(bootstrap: str, topic: str, path: Path, keyed_by: str | None = None) -> None:
    """Produce every line of ``path`` as one message (optionally keyed by a field of the line)."""
    if keyed_by is None:
        subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-l", str(path)], check=True, timeout=300)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        keyed = Path(tmp) / "keyed"
        _write_keyed(path, keyed, keyed_by)
        subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-P", "-K", "\t", "-l", str(keyed)], check=True,
                       timeout=300)


def _write_keyed(path: Path, keyed: Path, keyed_by: str) -> None:
    """``key<TAB>line`` per line, the key taken from a field of the event (empty when there is none)."""
    import orjson

    with open(path, "rb") as src, open(keyed, "wb") as dst:
        for line in src:
            try:
                key = str(orjson.loads(line).get(keyed_by, "")).encode()
            except (orjson.JSONDecodeError, AttributeError):
                key = b""
            dst.write(key + b"\t" + line)


def kcat_consume(bootstrap: str, topic: str) -> list[bytes]:
    """Every message currently in ``topic`` (all partitions), via kcat."""
    out = subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-C", "-e", "-q", "-D", "\x1e"],
                         capture_output=True, check=False, timeout=120)
    return [m for m in out.stdout.split(b"\x1e") if m]


def kcat_consume_partitions(bootstrap: str, topic: str) -> dict[int, list[bytes]]:
    """Every message currently in ``topic``, per partition, in offset order (values must not hold newlines)."""
    out = subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-C", "-e", "-q", "-f", "%p\t%s\n"],
                         capture_output=True, check=False, timeout=120)
    parts: dict[int, list[bytes]] = {}
    for line in out.stdout.splitlines():
        p, _, value = line.partition(b"\t")
        parts.setdefault(int(p), []).append(value)
    return parts


def wait_until(condition, timeout: float, what: str, poll: float = 0.5):
    """Poll ``condition()`` until it returns a truthy value; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)
