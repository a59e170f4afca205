"""Whether Kafka or Redis answers, said once per process: one line when it goes away, one when it is back.

Every caller of a service in the process (a worker's two consumers, its
publisher, each partition's save) reports to the same :class:`Outage`, so a
broker restart is two lines in the log, however many of them noticed it.
A report of loss within ``SETTLE`` seconds of the end of an outage is often
a late one (librdkafka delivers its errors when it is next polled): it marks
the service down but is said only if a report after ``SETTLE`` confirms it.

>>> kafka = Outage("kafka")
>>> kafka.lost("1/1 brokers are down", now=0.0), kafka.lost("again", now=1.0), kafka.down
(True, False, True)
>>> kafka.back(now=5.0), kafka.back(now=6.0), kafka.down
(True, False, False)
>>> kafka.lost("late", now=5.5), kafka.back(now=5.6)  # a late report: nothing said
(False, False)
>>> kafka.lost("late", now=5.7), kafka.lost("still", now=9.0), kafka.back(now=9.5)  # confirmed later
(False, True, True)
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("inferwatch")


SETTLE = 2.0  # seconds after an outage's end in which a report of loss needs confirming


class Outage:
    def __init__(self, what: str) -> None:
        self.what = what
        self.down = False
        self.said = False  # this outage was logged
        self.ended = float("-inf")  # when the last outage ended
        self._lock = threading.Lock()  # librdkafka's callbacks run in its threads

    def lost(self, detail: object, now: float | None = None) -> bool:
        """Note that the service did not answer; True (and one log line) when that starts an outage."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.down = True
            if self.said or now - self.ended < SETTLE:
                return False
            self.said = True
        log.warning("%s unavailable, retrying (nothing is dropped): %s", self.what, detail)
        return True

    def suspect(self) -> None:
        """A report that the service may be away: nothing said until :meth:`lost` confirms it (or :meth:`back`
        clears it).

        >>> k = Outage("kafka"); k.suspect(); k.down, k.said, k.back(), k.down
        (True, False, False, False)
        """
        with self._lock:
            self.down = True

    def back(self, now: float | None = None) -> bool:
        """Note that the service answered; True (and one log line) when that ends an outage that was said."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self.down:
                return False
            said, self.down, self.said = self.said, False, False
            if said:
                self.ended = now
        if said:
            log.warning("%s available again", self.what)
        return said


_OUTAGES: dict[str, Outage] = {}
_LOCK = threading.Lock()


def outage(what: str) -> Outage:
    """The process's one :class:`Outage` of ``what`` ("kafka", "redis")."""
    with _LOCK:
        return _OUTAGES.setdefault(what, Outage(what))
