"""Incident records: one per opening, update and resolution of an incident, with its most likely cause."""

import numpy as np

from inferwatch.detectors.alerts import AlertPolicy, Finding
from inferwatch.detectors.config import AlertPolicyConfig
from inferwatch.detectors.incidents import add_member, likely_cause, summary_of


def cause(*members) -> str:
    s = summary_of("i", 0.0)
    for column, kind, segment, factor in members:
        add_member(s, column, "mean", kind, "warning", 1.2, f"{column} moved", segment, factor)
    return likely_cause(s)


def test_the_cause_follows_the_shape_of_the_incident():
    assert cause(("amount", "drift", None, 100.0)) == "one upstream column changed units: amount (about x100)"
    assert cause(("amount", "drift", None, 0.01)) == "one upstream column changed units: amount (about /100)"
    assert cause(("age", "drift", None, 1.1), ("country", "drift", None, None),
                 ("prediction", "drift", None, None)).startswith("the traffic mix changed: 2 input columns")
    assert cause(("score_a", "drift", "region=eu", None), ("score_a", "drift", None, None)) == \
        "one input column changed: score_a; the prediction did not move (in segment region=eu)"
    assert cause(("prediction.score", "drift", None, None)).startswith("the prediction moved while its inputs")
    assert cause(("tenure", "data_quality", None, None)) == "a data-quality failure upstream: tenure"
    assert cause(("error_rate", "performance", None, None)) == "the model's performance dropped"
    # a model output that moved with its input by the same factor is not a second upstream column
    assert cause(("amount", "drift", None, 100.0), ("prediction.payout", "drift", None, 130.0)) == \
        "one upstream column changed units: amount (about x100); the prediction moved with it"
    # the largest move of a column is the one named: a segment's own x100, not the whole model's diluted x24
    assert cause(("amount", "drift", None, 24.0), ("amount", "drift", "region=eu", 100.0)) == \
        "one upstream column changed units: amount (about x100) (in segment region=eu)"


def finding(column, action, row, detector="mean"):
    return Finding(column, detector, action, row, 30.0, 25.0, "critical", f"{column} {action}",
                   factor=100.0 if column == "amount" else None)


def run(batches, restart_at=None):
    """(status, row, record id, columns) of the incident records over batches of (offset, findings, n)."""
    cfg = AlertPolicyConfig(cooldown_seconds=0.0)
    policy, out = AlertPolicy("m", cfg), []
    for k, (offset, findings, n) in enumerate(batches):
        if k == restart_at:
            policy = AlertPolicy.from_dict("m", cfg, policy.to_dict())
        times = np.arange(offset, offset + n, dtype=float)
        ids = np.array([f"e{i}" for i in range(offset, offset + n)], dtype=object)
        alerts = policy.apply([Finding(f.column, f.detector, f.action, f.row - offset, f.score, f.threshold,
                                       f.severity, f.message, factor=f.factor) for f in findings], times, ids)
        assert all(a.incident_id for a in alerts)
        out += [(r.status, offset + r.row, r.alert_id, tuple(r.incident["columns"])) for r in policy.records]
    return out


def test_records_open_update_and_resolve_the_incident_whatever_the_batches():
    events = [finding("amount", "fire", 5), finding("country", "fire", 9, "new_category"),
              finding("country", "clear", 20, "new_category"), finding("amount", "clear", 30)]
    whole = run([(0, events, 100)])
    assert [(s, row, cols) for s, row, _, cols in whole] == [
        ("firing", 5, ("amount",)), ("firing", 9, ("amount", "country")), ("resolved", 30, ("amount", "country"))]
    assert len({rid for _, _, rid, _ in whole}) == 3
    cut = run([(0, events[:1], 7), (7, events[1:3], 20), (27, events[3:], 73)], restart_at=1)
    assert cut == whole  # the same ids and content across batch cuts and a restart from the state


def test_columns_that_fire_on_one_event_make_one_record_of_the_incident():
    """A unit slip moves an input and the output on the same event: one record, naming both, not an "opened:
    the prediction did not move" followed at once by "updated: it moved with it"."""
    events = [finding("amount", "fire", 5), finding("prediction", "fire", 5), finding("country", "fire", 9)]
    records = run([(0, events, 100)])
    assert [(s, row, cols) for s, row, _, cols in records] == [
        ("firing", 5, ("amount", "prediction")), ("firing", 9, ("amount", "prediction", "country"))]


def test_an_incident_that_resolves_where_another_opens_keeps_its_resolved_record():
    """One episode resolves at event 900 and another column opens there, past the incident window: the first
    incident's "resolved" record is not lost to the second's "firing" one."""
    events = [finding("amount", "fire", 5), finding("amount", "clear", 900), finding("country", "fire", 900)]
    records = run([(0, events, 1_000)])
    assert [(s, row) for s, row, _, _ in records] == [("firing", 5), ("resolved", 900), ("firing", 900)], records
