"""Alert policy: episodes, cool-down, re-notification, deterministic ids."""

import numpy as np

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
        out += [(a.status, offset + a.row, a.alert_id) for a in policy.apply(findings, times, ids)]
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
