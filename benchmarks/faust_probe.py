"""Events/s of a bare faust-streaming agent (``take_events``, no work at all) on a topic.

Usage: ``python benchmarks/faust_probe.py BOOTSTRAP TOPIC N OUT``; writes the events/s to OUT.
It is the ceiling of any Faust agent on this machine: benchmarks/worker.py runs it.
"""

import os
import sys
import time
import uuid

import faust

bootstrap, topic, total, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
app = faust.App(f"probe-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
                value_serializer="raw", web_enabled=False, consumer_auto_offset_reset="earliest",
                broker_max_poll_records=5000, stream_buffer_maxsize=65536, consumer_max_fetch_size=8 << 20)
events = app.topic(topic, value_type=bytes, value_serializer="raw")
seen = {"n": 0, "t0": 0.0}


@app.agent(events, concurrency=1)
async def count(stream):
    async for batch in stream.take_events(5000, within=0.5):
        if not seen["n"]:
            seen["t0"], seen["first"] = time.perf_counter(), len(batch)
        seen["n"] += len(batch)
        if seen["n"] >= total:
            rate = (seen["n"] - seen["first"]) / (time.perf_counter() - seen["t0"])
            with open(out, "w") as f:
                f.write(f"{rate:.0f}\n")
            os._exit(0)
        yield len(batch)


faust.Worker(app, loglevel="error", quiet=True).execute_from_commandline()
