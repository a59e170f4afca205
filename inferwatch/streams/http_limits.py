"""Limits on what one HTTP client can hold: the HTTP guard's connection protocol.

uvicorn's httptools protocol keeps a request's head (its line and headers)
in memory as it comes, with no bound on its size or on how long it takes,
and keeps a new connection that sends nothing open for good. This subclass
adds what nginx has (``large_client_header_buffers``,
``client_header_timeout``, ``client_body_timeout``):

* a request head over ``max_head_bytes`` (64 KiB) or with more than
  ``max_headers`` (100) headers is answered 431 and the connection closed,
  before more of it is kept;
* a head not complete ``header_seconds`` (10 s) after the connection opened
  or the request began is answered 408 and closed (an idle connection
  between requests is closed by the keep-alive timeout instead);
* a body that stops arriving for ``body_seconds`` (30 s) closes the
  connection (the application sees the client gone).

>>> protocol = limited_protocol(header_seconds=2.0)
>>> protocol.header_seconds, protocol.max_headers
(2.0, 100)
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["LimitedHttpProtocol", "limited_protocol"]


def _answer(code: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class LimitedHttpProtocol(HttpToolsProtocol):
    max_head_bytes = 64 * 1024
    max_headers = 100
    header_seconds = 10.0
    body_seconds = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head, self._head_bytes, self._header_count, self._refused = True, 0, 0, False
        self._timer: asyncio.TimerHandle | None = None
        self._arm(self.header_seconds, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:  # (a read may hold the end of the head and a body: counted once the head is over)
            self._head_bytes += len(data)
        elif self.body_seconds and self._timer is not None:  # the body moves: its clock starts again
            self._arm(self.body_seconds, self._body_too_slow)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and not self._refused:
            self._refuse(431, "Request Header Fields Too Large",
                         f"the request's head is over {self.max_head_bytes:,} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_count = True, 0
        if self._timer is None:
            self._arm(self.header_seconds, self._head_too_slow)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refuse(431, "Request Header Fields Too Large", f"more than {self.max_headers} headers")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:  # the rest of what the parser had is dropped with the connection
            return
        self._in_head, self._head_bytes = False, 0
        self._arm(self.body_seconds, self._body_too_slow)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._refused:
            super().on_message_complete()

    def _arm(self, seconds: float, then) -> None:
        self._disarm()
        if seconds:
            self._timer = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()  # type: ignore[union-attr]
            self._timer = None

    def _head_too_slow(self) -> None:
        self._timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, "Request Timeout", f"no complete request head within {self.header_seconds:g} s")

    def _body_too_slow(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, code: int, reason: str, text: str) -> None:
        self._disarm()
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_answer(code, reason, text))
            self.transport.close()


def limited_protocol(**limits: float) -> type[LimitedHttpProtocol]:
    """The protocol with other limits (``max_head_bytes``, ``max_headers``, ``header_seconds``,
    ``body_seconds``; 0 seconds: no timeout)."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), dict(limits))
