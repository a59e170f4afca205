"""The HTTP guard's long lists of events, answered in a process of their own.

A list of thousands of events takes tens of milliseconds of Python to parse,
decide and encode. Done in a thread of the server's process, that work
shares the interpreter lock with the event loop, and every single-event
request waits behind it at each turn. In a process of its own (started on
the first long list, at a lower scheduling priority) it shares only the
CPU: the operating system runs the event loop first.

The two processes speak over a pipe in bytes only: the request body goes
in, ``msgpack([code, {action: count}, answer])`` comes back (no pickle of
anything a client sent). The child builds its guard from the config's JSON,
so its decisions are the parent's. A child found dead is started again and
the list asked again; a list whose second child dies too, or that is not
answered within ``ANSWER_SECONDS``, gets 503 (the child is stopped); an
error inside the child is a 500 for that list only.
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import os
import threading

import msgspec

from ..detectors.config import MonitorConfig

__all__ = ["HeavyWorker"]

NICE = 10  # the child's scheduling priority below the server's
ANSWER_SECONDS = 60.0  # a list not answered in this time: the child is stopped (and started again next time)


class HeavyWorker:
    """One child process answering long lists, one at a time (:meth:`answer`)."""

    def __init__(self, config: MonitorConfig, max_body_bytes: int, max_events: int) -> None:
        self.settings = (config.model_dump_json(), max_body_bytes, max_events)
        self.process = None
        self.conn = None
        self.lock = threading.Lock()  # one request on the pipe at a time

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads and an event loop
        parent, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, *self.settings), daemon=True,
                                       name="inferwatch-long-lists")
        self.process.start()
        child.close()
        self.conn = parent

    def _roundtrip(self, body: bytes) -> tuple[int, dict[str, int], bytes] | None:
        """In a thread (blocking on the pipe, the interpreter lock free): the child's answer. A child found dead
        is started again and asked again (an answer is a pure function of the body); None if that one dies too."""
        with self.lock:
            for _ in range(2):
                if self.process is None or not self.process.is_alive():
                    self._start()
                assert self.conn is not None
                try:
                    self.conn.send_bytes(body)
                    if not self.conn.poll(ANSWER_SECONDS):  # a child that hangs is not waited on for ever
                        raise TimeoutError
                    code, counts, answer = msgspec.msgpack.decode(self.conn.recv_bytes())
                except TimeoutError:
                    self.close()
                    return None
                except (EOFError, OSError):
                    self.close()
                    continue
                return code, counts, answer
            return None

    async def answer(self, body: bytes) -> tuple[int, dict[str, int], bytes] | None:
        """(status code, decisions per action, encoded answer) of a request body; None if the child died."""
        return await asyncio.get_running_loop().run_in_executor(None, self._roundtrip, body)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
        self.process = self.conn = None


def _serve(conn, config_json: str, max_body_bytes: int, max_events: int) -> None:
    """The child: answer each body from the pipe as the server would, until the pipe closes."""
    from .guard import Guard
    from .http_guard import GuardApp

    try:
        os.nice(NICE)
    except OSError:
        pass
    app = GuardApp(Guard(MonitorConfig.model_validate_json(config_json)), max_body_bytes, max_events)
    encode = msgspec.json.Encoder().encode
    pack = msgspec.msgpack.Encoder().encode
    while True:
        try:
            body = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            code, payload = app._answer(body)
            counts = collections.Counter(d.action for d in payload) if code == 200 and isinstance(payload, list) \
                else {}
            answer = pack([code, dict(counts), encode(payload)])
        except Exception as exc:  # a bug, not the client's fault: answered, and the child lives on
            answer = pack([500, {}, encode({"errors": [{"index": None, "field": None,
                                                         "error": f"internal error ({type(exc).__name__})"}]})])
        conn.send_bytes(answer)
