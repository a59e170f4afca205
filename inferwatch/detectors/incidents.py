"""Incident records: what one incident's alerts say together, for the person paged.

The alert policy groups a model's episodes that open close together into
one incident (see :mod:`inferwatch.detectors.alerts`). Beside the alerts,
each incident gets *records*: alerts of ``kind: "incident"`` (detector
``incident``, no ``feature``) with the same ``incident_id`` and an
``incident`` object:

* ``status: "firing"`` when the incident opens and each time a column or a
  segment joins it (an update), ``"resolved"`` when its last open episode
  resolves;
* ``incident``: ``opened_at`` (event time of its first alert), ``columns``
  (in the order they moved: ``first`` is the one that moved first),
  ``segments`` (``tag=value``), ``prediction_moved``, ``alerts`` (episodes
  so far), ``changes`` (the strongest episodes' messages, in the columns'
  own units, at most ``MAX_CHANGES``) and ``cause``, the most likely cause
  in words (:func:`likely_cause`).

A record is decided in event order, like the incident itself, so its id and
content do not depend on where batches were cut.

>>> s = summary_of("", 0.0)
>>> add_member(s, "amount", "mean", "drift", "critical", 3.0, "amount: median 20.6 -> 2,277 (about x110)", None, 110.0)
True
>>> likely_cause(s)
'one upstream column changed units: amount (about x110)'
"""

from __future__ import annotations

import math

__all__ = ["MAX_CHANGES", "summary_of", "add_member", "likely_cause", "details"]

MAX_CHANGES = 5  # episodes whose messages a record lists
_RANK = {"critical": 2, "warning": 1, "info": 0}


def summary_of(incident_id: str, opened_at: float) -> dict:
    """An empty incident summary (plain data: it is kept in the alert policy's state)."""
    return {"id": incident_id, "opened_at": opened_at, "columns": [], "kinds": {}, "segments": [], "alerts": 0,
            "changes": [], "factors": {}, "severity": "info", "causes": []}


def add_member(s: dict, column: str, detector: str, kind: str, severity: str, strength: float, message: str,
               segment: str | None, factor: float | None) -> bool:
    """Count an episode that opened in the incident; True when it brings something new: its first episode, a
    column, a segment, or another kind of finding on a column (a record is due).

    ``strength`` is its score over its threshold; ``factor`` the ratio of a
    numeric column's median now to its reference median, when known.
    """
    cause = f"{column}/{kind if kind != 'data_quality' else detector}"
    new = (cause not in s["causes"] or column not in s["columns"]
           or (segment is not None and segment not in s["segments"]))
    if cause not in s["causes"]:
        s["causes"].append(cause)
    if column not in s["columns"]:
        s["columns"].append(column)
    s["kinds"].setdefault(column, kind)
    if segment is not None and segment not in s["segments"]:
        s["segments"].append(segment)
    if factor is not None and factor > 0 and (column not in s["factors"] or
                                              abs(math.log10(factor)) > abs(math.log10(s["factors"][column]))):
        s["factors"][column] = factor  # the largest move (a segment's own x100, not the whole model's x24)
    s["alerts"] += 1
    if _RANK[severity] > _RANK[s["severity"]]:
        s["severity"] = severity
    s["changes"].append([_RANK[severity], strength, column, detector, message])
    s["changes"] = sorted(s["changes"], key=lambda c: (-c[0], -c[1]))[:MAX_CHANGES]
    return new or s["alerts"] == 1


def likely_cause(s: dict) -> str:
    """The most likely cause, in words, from the shape of the incident (first rule that fits):

    1. performance alerts only: the model's performance dropped;
    2. an input column whose median moved by a factor of 8 or more, or part of whose values moved by about a
       power of ten: a unit change upstream (saying whether the prediction moved with it);
    3. the prediction and two or more inputs moved: the traffic mix changed;
    4. one input moved: that column changed (saying whether the prediction moved with it);
    5. the prediction moved alone: the model, or an input it does not log, changed;
    6. data-quality alerts only: a data-quality failure upstream;
    7. otherwise: several columns changed together.

    A change found in one segment only says so.
    """
    kinds, columns = s["kinds"], s["columns"]
    outputs = [c for c in columns if _is_prediction(c)]
    inputs = [c for c in columns if not _is_prediction(c) and kinds.get(c) == "drift"]
    units = [(c, f) for c, f in s["factors"].items()
             if f > 0 and abs(math.log10(f)) >= math.log10(8) and not _is_prediction(c)]
    where = f" (in segment {s['segments'][0]})" if len(s["segments"]) == 1 else ""
    if columns and all(kinds.get(c) == "performance" for c in columns):
        return "the model's performance dropped" + where
    if units:
        named = ", ".join(f"{c} ({_factor(f)})" for c, f in units)
        moved = "; the prediction moved with it" if outputs else ""
        return (f"one upstream column changed units: {named}" if len(units) == 1
                else f"{len(units)} upstream columns changed units: {named}") + moved + where
    if outputs and len(inputs) >= 2:
        return f"the traffic mix changed: {len(inputs)} input columns and the prediction moved together" + where
    if len(inputs) == 1:
        moved = "the prediction moved with it" if outputs else "the prediction did not move"
        return f"one input column changed: {inputs[0]}; {moved}" + where
    if outputs and not inputs:
        return "the prediction moved while its inputs did not: the model, or an input it does not log, changed" + where
    if columns and all(kinds.get(c) == "data_quality" for c in columns):
        return f"a data-quality failure upstream: {', '.join(columns)}" + where
    return f"{len(columns)} columns changed together" + where


def details(s: dict, opened_at: str) -> dict:
    """The record's ``incident`` object."""
    return {
        "opened_at": opened_at,
        "columns": list(s["columns"]),
        "first": s["columns"][0] if s["columns"] else None,
        "segments": list(s["segments"]),
        "prediction_moved": any(_is_prediction(c) for c in s["columns"]),
        "alerts": s["alerts"],
        "changes": [{"feature": c, "detector": d, "message": m} for _, _, c, d, m in s["changes"]],
        "cause": likely_cause(s),
    }


def _is_prediction(column: str) -> bool:
    return column == "prediction" or column.startswith("prediction.")


def _factor(f: float) -> str:
    return f"about x{f:,.0f}" if f >= 1 else f"about /{1 / f:,.0f}"
