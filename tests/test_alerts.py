"""Alert policy: episodes, cool-down, re-notification, deterministic ids."""

import numpy as np
import pytest

from inferwatch.detectors.alerts import AlertPolicy, Finding
from inferwatch.detectors.config import AlertPolicyConfig


def finding(action, row):
    return Finding("x", "mean", action, row, 30.0, 25.0, "warning", "msg")


def run(cfg, batches):
    policy = AlertPolicy("m", cfg)
    out = []
    for offset, findings, n in batches:
        times = np.arange(offset, offset + n, dtype=float)
        ids = np.array([f"e{i}" for i in range(offset, offset + n)], dtype=object)
        out += [(a.status, offset + a.row, a.alert_id) for a in policy.apply(findings, times, ids)
                if a.kind != "incident"]  # episodes only: incident records are tested below
    return out


def test_fire_and_clear_make_one_episode():
    out = run(AlertPolicyConfig(), [(0, [finding("fire", 5), finding("clear", 50)], 100)])
    assert [(s, r) for s, r, _ in out] == [("firing", 5), ("resolved", 50)]


def test_cooldown_merges_flapping_into_one_episode():
    cfg = AlertPolicyConfig(cooldown_seconds=30)
    out = run(cfg, [(0, [finding("fire", 5), finding("clear", 10), finding("fire", 20), finding("clear", 40)], 60),
                    (60, [], 40)])
    assert [(s, r) for s, r, _ in out] == [("firing", 5), ("resolved", 70)]


def test_renotify_repeats_firing_with_new_ids():
    cfg = AlertPolicyConfig(renotify_seconds=10)
    out = run(cfg, [(0, [finding("fire", 0)], 25)])
    assert [(s, r) for s, r, _ in out] == [("firing", 0), ("firing", 10), ("firing", 20)]
    assert len({i for *_, i in out}) == 3


def test_ids_are_deterministic():
    a = run(AlertPolicyConfig(), [(0, [finding("fire", 5)], 10)])
    b = run(AlertPolicyConfig(), [(0, [finding("fire", 5)], 10)])
    assert a == b


def test_episodes_that_open_close_together_share_an_incident():
    """x at 5, y at 50 while x is open: one incident; z at 500, after both closed and past the 100 s window:
    a new one. Resolved alerts keep their episode's incident."""
    policy = AlertPolicy("m", AlertPolicyConfig(incident_window_seconds=100))
    times = np.arange(1000, dtype=float)
    ids = np.array([f"e{i}" for i in range(1000)], dtype=object)

    def f(column, action, row):
        return Finding(column, "mean", action, row, 30.0, 25.0, "warning", "msg")

    alerts = policy.apply([f("x", "fire", 5), f("y", "fire", 50), f("x", "clear", 60), f("y", "clear", 120),
                           f("z", "fire", 500)], times, ids)
    incident = {(a.feature, a.status): a.incident_id for a in alerts}
    assert incident[("x", "firing")] == incident[("y", "firing")] == incident[("x", "resolved")]
    assert incident[("y", "resolved")] == incident[("x", "firing")]
    assert incident[("z", "firing")] not in (None, incident[("x", "firing")])
    again = AlertPolicy("m", AlertPolicyConfig(incident_window_seconds=100))
    assert [a.incident_id for a in again.apply([f("x", "fire", 5)], times, ids)] == [incident[("x", "firing")]]


def test_an_episode_opening_within_the_window_joins_the_closed_incident():
    policy = AlertPolicy("m", AlertPolicyConfig(incident_window_seconds=100))
    times = np.arange(1000, dtype=float)
    ids = np.array([f"e{i}" for i in range(1000)], dtype=object)
    alerts = policy.apply([Finding("x", "mean", "fire", 5, 30.0, 25.0, "warning", "msg"),
                           Finding("x", "mean", "clear", 10, 1.0, 25.0, "info", "msg"),
                           Finding("y", "missing", "fire", 80, 30.0, 25.0, "warning", "msg")], times, ids)
    assert len({a.incident_id for a in alerts}) == 1
    restored = AlertPolicy.from_dict("m", policy.config, policy.to_dict())  # the incident survives a restart
    later = restored.apply([Finding("z", "mean", "fire", 150, 30.0, 25.0, "warning", "msg")], times, ids)
    assert later[0].incident_id == alerts[0].incident_id  # 70 s after y opened


def test_an_episode_reopening_where_it_resolved_stays_in_its_incident():
    """amount's episode resolves and reopens at row 10 (cool-down 0), 900 s after it first opened: a new
    incident; zip opens 900 s later, past the window, while amount is open again: it joins amount's."""
    policy = AlertPolicy("m", AlertPolicyConfig())
    times = np.arange(20) * 100.0
    ids = np.array([str(i) for i in range(20)], dtype=object)

    def f(column, detector, action, row):
        return Finding(column, detector, action, row, 1.0, 1.0, "warning", "x")

    alerts = policy.apply([f("amount", "scale", "fire", 1), f("amount", "mean", "fire", 2),
                           f("amount", "scale", "clear", 3), f("amount", "mean", "clear", 10),
                           f("amount", "scale", "fire", 10), f("zip", "missing", "fire", 19)], times, ids)
    incident = {(a.row, a.feature, a.status): a.incident_id for a in alerts}
    assert incident[(10, "amount", "resolved")] == incident[(1, "amount", "firing")]
    assert incident[(19, "zip", "firing")] == incident[(10, "amount", "firing")] != incident[(1, "amount", "firing")]


def test_a_rule_named_incident_keeps_its_episodes_across_a_restart():
    policy = AlertPolicy("m", AlertPolicyConfig())
    times = np.arange(10, dtype=float)
    ids = np.array([str(i) for i in range(10)], dtype=object)
    first = policy.apply([Finding("", "incident", "fire", 1, 1.0, 1.0, "warning", "x")], times, ids)
    restored = AlertPolicy.from_dict("m", policy.config, policy.to_dict())
    later = restored.apply([Finding("", "incident", "clear", 2, 0.0, 1.0, "info", "x"),
                            Finding("", "incident", "fire", 5, 1.0, 1.0, "warning", "x")], times, ids)
    assert [a.status for a in later] == ["resolved", "firing"]
    assert later[1].alert_id != first[0].alert_id  # the second episode, not the first again


def _policy_run(findings, cooldown=0.0, n=100, cut=100):
    """The alerts (row, detector, status, segment) of ``findings`` over ``n`` rows cut into batches of ``cut``,
    the policy saved and read back between batches."""
    policy, out = AlertPolicy("m", AlertPolicyConfig(cooldown_seconds=cooldown)), []
    times, ids = np.arange(n, dtype=float), np.array([f"e{i}" for i in range(n)], dtype=object)
    for lo in range(0, n, cut):
        part = [Finding(**{**vars(f), "row": f.row - lo}) for f in findings if lo <= f.row < lo + cut]
        out += [(a.row + lo, a.detector, a.status, a.segment) for a in policy.apply(part, times[lo:lo + cut],
                                                                                     ids[lo:lo + cut])
                if a.kind != "incident"]
        policy = AlertPolicy.from_dict("m", policy.config, policy.to_dict())
    return out


@pytest.mark.parametrize("cut", [100, 7, 33])
def test_a_segment_opens_no_episode_while_the_whole_model_says_it(cut):
    """A segment's firing while the whole model's episode of the same cause is open (cooling down included)
    opens nothing: one cause, one alert (ten versions under one shift paged eleven times); an episode the
    segment opened first goes on as one, whatever fires after. The same alerts whatever the cuts."""
    seg = ("model_version", "3.0")

    def f(det, action, row, segment=None):
        return Finding("p", det, action, row, 30.0, 25.0, "warning", f"p {det} {action}", segment=segment)

    v = {"model_version": "3.0"}
    whole = [(10, "mean", "firing", None), (30, "mean", "resolved", None)]
    assert _policy_run([f("mean", "fire", 10), f("mean", "fire", 12, seg), f("mean", "clear", 30)], cut=cut) == whole
    first = [f("mean", "fire", 10, seg), f("mean", "fire", 20), f("shape", "fire", 30, seg), f("mean", "clear", 40, seg)]
    assert _policy_run(first, cut=cut) == [(10, "mean", "firing", v), (20, "mean", "firing", None)]
    cooling = [f("mean", "fire", 10), f("mean", "clear", 30), f("mean", "fire", 35, seg)]
    assert _policy_run(cooling, cooldown=10, cut=cut) == [(10, "mean", "firing", None), (40, "mean", "resolved", None)]
