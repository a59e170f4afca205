"""Alert policy: detector transitions in, episodes of alerts out.

One episode per (model, column, cause) gives one ``firing`` alert and one
``resolved`` alert: the drift detectors of a column (``mean``, ``scale``,
``shape``, ``mix``) are one cause, so a unit bug that moves all three is one
alert, named by the detector that crossed first and lasting while any of
them fires; ``missing``, ``new_category``, ``type_changed`` and each rule
are causes of their own. ``cooldown_seconds`` of event time must pass clear
before an episode resolves (a re-firing inside it continues the episode),
and ``renotify_seconds`` repeats the firing alert while it lasts. A segment's
detector that fires while the whole model's episode of the same column and
cause is open opens no episode (one cause, one alert: the whole model's says
it; the segment's alert comes when its detector clears and fires again); a
change confined to a segment fires there first and is told. Ids are a
hash of (model, column, detector, episode number, status, notice number):
the same events always give the same ids, so downstream can de-duplicate.

Episodes of one model that open close together are one *incident* (its
records, in :attr:`AlertPolicy.records`, are described in
:mod:`inferwatch.detectors.incidents`): an
episode that opens while another is open, or within
``incident_window_seconds`` (event time) of the last one that opened, joins
its incident; otherwise it opens a new one. Every alert of an episode
(firing, reminders, resolved) carries its incident's id, a hash of the model
and the id of the alert that opened it, so one page can stand for all of
them.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from .config import AlertPolicyConfig
from .incidents import add_member, details, summary_of
from .lanes import DETECTOR_KIND
from .timefmt import rfc3339
from .types import Alert, TextArray

__all__ = ["Finding", "AlertPolicy", "alert_id"]

# the key of the incident's state among the episodes': an episode's key is "column<US>group[<US>tag=value]", so
# none has an empty group and a last part without "="
_INCIDENT = "\x1f\x1fincident"


@dataclass(frozen=True)
class Finding:
    """A detector opening or closing, ready to be told to a person."""

    column: str
    detector: str
    action: str  # "fire" | "clear"
    row: int
    score: float
    threshold: float
    severity: str
    message: str
    kind: str | None = None  # default: the detector's kind (drift, data_quality)
    segment: tuple[str, str] | None = None  # (tag, value) when a segment's own detector found it
    factor: float | None = None  # a numeric column's median at the firing over its reference median
    run: int = 0  # events the firing's evidence was gathered over (0: not said)


@dataclass
class _Episode:
    number: int = 0
    open: bool = False
    clear_pending: float | None = None  # event time the detector went clear, if cooling down
    clear_score: float = 0.0
    clear_threshold: float = 0.0
    notified_at: float = 0.0
    notices: int = 0
    severity: str = "warning"
    threshold: float = 0.0
    kind: str | None = None
    incident: str = ""  # the id of the incident this episode belongs to
    started: float = float("-inf")  # event time it opened
    segment: str | None = None  # "tag=value", for a segment's own detector
    first: str = ""  # the detector that opened the episode: the alerts' detector
    active: list[str] = field(default_factory=list)  # detectors of the episode still firing
    fired: list[str] = field(default_factory=list)  # every detector that fired in the episode


def alert_id(model: str, column: str | None, detector: str, episode: int, status: str, notice: int,
             segment: str | None = None) -> str:
    """Deterministic id of one alert.

    >>> alert_id("fraud", "amount", "mean", 1, "firing", 0) == alert_id("fraud", "amount", "mean", 1, "firing", 0)
    True
    """
    parts = [model, column or "", detector, str(episode), status, str(notice)]
    key = "\x1f".join(parts + [segment] if segment else parts)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass
class AlertPolicy:
    model: str
    config: AlertPolicyConfig
    episodes: dict[str, _Episode] = field(default_factory=dict)
    # the model's current incident: its id, the event time its last episode opened, its open episodes' keys
    incident: dict = field(default_factory=lambda: {"id": "", "last": float("-inf"), "open": []})
    _opened: dict = field(default_factory=dict, repr=False)  # this batch's opening alert ids -> rows
    _trace: dict = field(default_factory=dict, repr=False)  # this batch's (row, open) of each episode key
    records: list = field(default_factory=list, repr=False)  # the last batch's incident records (see incidents.py)

    def open_alerts(self) -> list[tuple[str, ...]]:
        """(column, detector[, "tag=value"]) of each open episode; the detector is the one that opened it."""
        out = []
        for key, ep in sorted(self.episodes.items()):
            if ep.open:
                column, group, *where = key.split("\x1f")
                out.append((column, ep.first or group, *where))
        return out

    def apply(self, findings: list[Finding], times: np.ndarray, event_ids: TextArray | np.ndarray) -> list[Alert]:
        """Turn this batch's findings into alerts, in row order; the incident records they make go to
        :attr:`records` (replaced on each call)."""
        self.records = []
        by_key: dict[str, list[Finding]] = {}
        for f in sorted(findings, key=lambda f: (f.row, f.column, f.detector, f.segment or ())):
            key = f"{f.column}\x1f{_group(f.detector)}" + (f"\x1f{f.segment[0]}={f.segment[1]}" if f.segment else "")
            by_key.setdefault(key, []).append(f)
        keys = set(by_key) | {k for k, e in self.episodes.items() if e.open}
        out: list[Alert] = []
        whole = sorted(k for k in keys if k.count("\x1f") == 1)  # the whole model's first: a segment's need them
        self._trace = {k: [(-1, self.episodes[k].open if k in self.episodes else False)] for k in whole}
        for key in whole:
            out.extend(self._run_key(key, by_key.get(key, []), times, event_ids))
        for key in sorted(keys - set(whole)):
            out.extend(self._run_key(key, by_key.get(key, []), times, event_ids, key.rsplit("\x1f", 1)[0]))
        out.sort(key=lambda a: (a.row, a.feature or "", a.detector, a.status))
        return self._incidents(out)

    def _open_at(self, key: str, row: int) -> bool:
        """Whether the whole model's episode ``key`` is open at ``row`` of this batch (opened at or before it):
        a segment's finding of the same cause then adds nothing a person needs (one cause, one alert)."""
        state = False
        for at, is_open in self._trace.get(key, [(-1, False)]):
            if at > row:
                break
            state = is_open
        return state

    def _run_key(self, key, findings, times, event_ids, whole: str | None = None) -> list[Alert]:
        """One episode key's findings in row order; ``whole``: the whole model's key of a segment's (its
        episode's openings and resolutions this batch are in :attr:`_trace`): a finding that would open the
        segment's episode while that one is open is dropped."""
        ep = self.episodes.setdefault(key, _Episode())
        column, detector, *where = key.split("\x1f")
        ep.segment = where[0] if where else None  # "tag=value"
        out: list[Alert] = []
        cursor = 0
        for f in findings:
            cursor = self._deadlines(ep, column, detector, cursor, f.row, times, event_ids, out)
            t = float(times[f.row])
            if whole is not None and f.action == "fire" and not ep.open and self._open_at(whole, f.row):
                continue  # one cause, one alert: the whole model's episode of it is open and says it
            if f.action == "fire":
                if ep.open:  # another detector of the same cause, or a re-firing while cooling down: same episode
                    ep.clear_pending = None
                    ep.active = sorted({*ep.active, f.detector})
                    ep.fired = ep.fired + [f.detector] if f.detector not in ep.fired else ep.fired
                    continue
                ep.number += 1
                ep.open, ep.notices, ep.notified_at, ep.started = True, 0, t, t
                self._trace.setdefault(key, []).append((f.row, True))
                ep.severity, ep.threshold, ep.kind = f.severity, f.threshold, f.kind
                ep.first, ep.active, ep.fired = f.detector, [f.detector], [f.detector]
                out.append(replace(self._alert(ep, column, detector, "firing", f.severity, f.score, f.threshold,
                                               f.row, times, event_ids, f.message), factor=f.factor))
            elif ep.open:
                ep.active = [d for d in ep.active if d != f.detector]
                if ep.active:  # the episode lasts while any of its detectors fires
                    continue
                ep.clear_pending, ep.clear_score, ep.clear_threshold = t, f.score, f.threshold
                cursor = f.row
                message = f.message if len(ep.fired) == 1 else (
                    f"{column}: {', '.join(ep.fired)} all back within reference bounds "
                    f"(last: {f.message.split(': ', 1)[-1]})")
                if self.config.cooldown_seconds == 0.0:
                    self._resolve(ep, column, detector, f.row, times, event_ids, out, message)
            cursor = max(cursor, f.row)
        self._deadlines(ep, column, detector, cursor, len(times), times, event_ids, out)
        return out

    def _deadlines(self, ep, column, detector, lo, hi, times, event_ids, out) -> int:
        """Emit time-driven alerts (end of cool-down, re-notification) in rows [lo, hi)."""
        while lo < hi:
            if ep.clear_pending is not None:
                row = _first_at_or_after(times, lo, hi, ep.clear_pending + self.config.cooldown_seconds)
                if row is None:
                    return hi
                message = (f"{column}: {detector} has stayed within reference bounds "
                           f"for {self.config.cooldown_seconds:g}s.")
                self._resolve(ep, column, detector, row, times, event_ids, out, message)
                lo = row
            elif ep.open and self.config.renotify_seconds:
                row = _first_at_or_after(times, lo, hi, ep.notified_at + self.config.renotify_seconds)
                if row is None:
                    return hi
                ep.notices += 1
                ep.notified_at = float(times[row])
                out.append(self._alert(ep, column, detector, "firing", ep.severity, ep.threshold, ep.threshold,
                                       row, times, event_ids,
                                       f"{column}: {detector} is still firing (reminder {ep.notices})."))
                lo = row + 1
            else:
                return hi
        return hi

    def _incidents(self, alerts: list[Alert]) -> list[Alert]:
        """Each alert with its incident, decided in event order (so batch cuts change nothing): an episode
        opening while one of the incident's is open, or within the window of the last that opened, joins it;
        otherwise it opens a new incident, named after its firing alert."""
        inc = self.incident
        opening = {a.alert_id for a in alerts if a.status == "firing" and a.row in self._opened.get(a.alert_id, ())}
        self._opened.clear()
        keys = [f"{a.feature or ''}\x1f{_group(a.detector)}" + (
            "\x1f" + ",".join(f"{k}={v}" for k, v in a.segment.items()) if a.segment else "") for a in alerts]
        # an episode that resolves where the same key opens again: the resolution first
        order = sorted(range(len(alerts)), key=lambda i: (alerts[i].row, keys[i], alerts[i].status != "resolved"))
        incident_of: dict[int, str] = {}
        records: dict[int, list[Alert]] = {}  # incident records due after alert i
        due_at: list = []  # the record due at the current row: (row, after alert i, status, trigger); one a row,
        # made once the row's alerts are all in (two columns that fire on one event make one record)

        def flush() -> None:
            if due_at:
                _, i, status, trigger = due_at.pop()
                records.setdefault(i, []).append(self._incident_record(inc, status, trigger))

        for i in order:
            a, key = alerts[i], keys[i]
            if due_at and due_at[0][0] != a.row:
                flush()
            ep = self.episodes[key]
            due = None
            if a.alert_id in opening:
                if not (inc["open"] or a.event_time - inc["last"] <= self.config.incident_window_seconds):
                    flush()  # (the record due to the incident this event closed is that incident's)
                    inc["id"] = hashlib.sha256(f"{self.model}\x1fincident\x1f{a.alert_id}".encode()).hexdigest()[:24]
                    inc["summary"], inc["records"] = summary_of(inc["id"], a.event_time), 0
                reopened = not inc["open"] and inc.get("records", 0) > 0  # it had resolved: it fires again
                inc["open"] = sorted({*inc["open"], key})
                inc["last"] = a.event_time
                ep.incident = inc["id"]
                where = ",".join(f"{k}={v}" for k, v in a.segment.items()) if a.segment else None
                if add_member(inc.setdefault("summary", summary_of(inc["id"], a.event_time)), a.feature or "(model)",
                              a.detector, a.kind, a.severity, a.score / a.threshold if a.threshold else 0.0,
                              a.message, where, a.factor) or reopened:
                    due = "firing"
            elif a.status == "resolved" and key in inc["open"]:
                inc["open"] = [k for k in inc["open"] if k != key]
                due = None if inc["open"] else "resolved"
            incident_of[i] = ep.incident
            if due is not None and inc.get("summary"):
                due_at[:] = [(a.row, i, due, a)]
        flush()
        self.records = [r for i in sorted(records) for r in records[i]]
        return [replace(a, incident_id=incident_of[i] or None) for i, a in enumerate(alerts)]

    def _incident_record(self, inc: dict, status: str, trigger: Alert) -> Alert:
        """The incident's record after ``trigger`` (see :mod:`inferwatch.detectors.incidents`)."""
        s = inc["summary"]
        inc["records"] = inc.get("records", 0) + 1
        made = hashlib.sha256(f"{self.model}\x1fincident\x1f{inc['id']}\x1f{inc['records']}".encode()).hexdigest()
        said = details(s, rfc3339(s["opened_at"]))
        columns = ", ".join(said["columns"][:6]) + (f" and {len(said['columns']) - 6} more"
                                                   if len(said["columns"]) > 6 else "")
        way = "resolved" if status == "resolved" else ("opened" if inc["records"] == 1 else
                                                       "reopened" if inc.get("was_resolved") else "updated")
        inc["was_resolved"] = status == "resolved"
        message = (f"incident {way} on {self.model}: {said['alerts']} alert(s) on {columns}; "
                   f"likely cause: {said['cause']}.")
        strongest = max((c[1] for c in s["changes"]), default=0.0)
        return replace(trigger, alert_id=made[:24], status=status, feature=None, segment=None, kind="incident",
                       detector="incident", severity="info" if status == "resolved" else s["severity"],
                       score=strongest, threshold=1.0, message=message, incident_id=inc["id"], incident=said,
                       factor=None)

    def _resolve(self, ep, column, detector, row, times, event_ids, out, message) -> None:
        out.append(self._alert(ep, column, detector, "resolved", "info", ep.clear_score, ep.clear_threshold,
                               row, times, event_ids, message))
        ep.open, ep.clear_pending = False, None
        self._trace.setdefault(f"{column}\x1f{detector}" + (f"\x1f{ep.segment}" if ep.segment else ""), []).append(
            (int(row), False))

    def _alert(self, ep, column, detector, status, severity, score, threshold, row, times, event_ids, message):
        notice = ep.notices if status == "firing" else 0
        shown = ep.first or detector
        made = alert_id(self.model, column, detector, ep.number, status, notice, ep.segment)
        if status == "firing" and notice == 0:  # an episode opens: its incident is decided in event order
            self._opened.setdefault(made, set()).add(int(row))
        return Alert(
            alert_id=made,
            status=status, model=self.model, feature=column or None,
            segment=dict([ep.segment.split("=", 1)]) if ep.segment else None,
            kind=ep.kind or DETECTOR_KIND.get(shown, "drift"),
            detector=shown, severity=severity, score=score, threshold=threshold,
            event_time=float(times[row]), row=int(row), message=message, event_id=str(event_ids[row]),
        )

    def to_dict(self) -> dict:
        return {**{k: vars(e).copy() for k, e in self.episodes.items()}, _INCIDENT: copy.deepcopy(self.incident)}

    @classmethod
    def from_dict(cls, model: str, config: AlertPolicyConfig, raw: dict) -> AlertPolicy:
        policy = cls(model, config, {k: _Episode(**v) for k, v in raw.items() if k != _INCIDENT})
        policy.incident.update(raw.get(_INCIDENT) or {})
        return policy


def _group(detector: str) -> str:
    """The episode a detector's findings belong to: the drift detectors of a column and its precision share
    one (one cause, one alert: a unit slip moves both); every other detector (missing, new labels, a type
    change, a rule) has its own."""
    return "drift" if DETECTOR_KIND.get(detector) == "drift" or detector == "decimals" else detector


def _first_at_or_after(times: np.ndarray, lo: int, hi: int, deadline: float) -> int | None:
    hit = times[lo:hi] >= deadline
    if not hit.any():
        return None
    return lo + int(np.argmax(hit))
