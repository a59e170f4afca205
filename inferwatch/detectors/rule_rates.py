"""Guardrail alerts: each rule's violation rate, watched by a Bernoulli CUSUM.

A rule that fires now and then is the guard doing its job; a rule that
starts firing far more often than it should is news. Each rule with an
``alert_rate`` (the share of events it may violate, 1 % by default) gets
lanes for violation shares 2, 4, 10 and 30 times that (exact Bernoulli
log-likelihood ratios, so Lorden's bound holds), on the same block CUSUM as
the drift detectors. Its threshold is the model's false-alarm budget, the
rule counting as one more column. A crossing becomes a ``guardrail`` alert
through the alert policy: one episode, not one alert per violation.

>>> import numpy as np
>>> from inferwatch.detectors.config import RuleConfig
>>> rates = RuleRates([RuleConfig(kind="range", field="prediction", max=1, action="fix")], 1e9, block=32)
>>> hits = np.zeros((1, 20_000), dtype=bool)
>>> hits[0, 10_000::4] = True  # a quarter of the events break the rule from event 10,000
>>> [(f.detector, f.action, f.row) for f in rates.observe(hits, start=0)]
[('range:prediction', 'fire', 10044)]
"""

from __future__ import annotations

import math

import numpy as np

from .alerts import Finding
from .config import RuleConfig
from .cusum import BlockCusum, LaneState
from .lanes import LaneTable

__all__ = ["RuleRates"]

MULTIPLES = (2.0, 4.0, 10.0, 30.0)
MAX_SHARE = 0.95


def rate_lanes(tolerated: float, log_arl0: float) -> LaneTable:
    """Lanes for a violation share above ``tolerated`` (codes: 0 = kept the rule, 1 = broke it)."""
    shares = sorted({min(m * tolerated, MAX_SHARE) for m in MULTIPLES} - {tolerated})
    shares = [p for p in shares if p > tolerated]
    log_mgf = [-math.log((1 - p) / (1 - tolerated)) for p in shares]
    theta = [math.log(p / tolerated) + g for p, g in zip(shares, log_mgf)]
    table = np.array([[-g for g in log_mgf], [t - g for t, g in zip(theta, log_mgf)]])
    n = len(shares)
    return LaneTable(("guardrail",) * n, table, np.full(n, log_arl0 + math.log(n)), np.asarray(theta),
                     np.asarray(log_mgf), np.full(n, tolerated), np.ones(n, dtype=np.int64))


class RuleRates:
    """The violation-rate detectors of one model's rules (rules without ``alert_rate`` are not watched)."""

    def __init__(self, rules: list[RuleConfig], budget: float, block: int = 32, resolve_fraction: float = 0.5) -> None:
        self.rules = rules
        self.watched = [i for i, r in enumerate(rules) if r.alert_rate is not None]
        self.engines = {i: BlockCusum(rate_lanes(r.alert_rate, math.log(budget)), block, resolve_fraction)
                        for i, r in enumerate(rules) if r.alert_rate is not None}
        self.states = {i: LaneState.fresh(self.engines[i].lanes) for i in self.watched}

    def observe(self, hits: np.ndarray, start: int) -> list[Finding]:
        """Feed a batch's violation matrix (rules x events, events ``start ..``); return openings and closings."""
        out: list[Finding] = []
        for i in self.watched:
            rule = self.rules[i]
            for t in self.engines[i].advance(self.states[i], hits[i].astype(np.int64), start):
                message, severity = self._describe(i, t)
                out.append(Finding(rule.field or "", rule.label, t.action, t.row, t.score, t.threshold,
                                   severity, message, kind="guardrail"))
        return out

    def _describe(self, i: int, t) -> tuple[str, str]:
        rule = self.rules[i]
        if t.action == "clear":
            return (f"rule {rule.label}: violations are back near the tolerated {rule.alert_rate:.2%} "
                    f"(evidence {t.score:.1f}, threshold {t.threshold:.1f}).", "info")
        lanes = self.engines[i].lanes
        run = max(t.run_length, 1)
        share = min(max((t.score / run + lanes.log_mgf[t.lane]) / lanes.theta[t.lane], 0.0), 1.0)
        severity = "critical" if rule.action in ("block", "fallback") else "warning"
        return (f"rule {rule.label} ({rule.action}): violations rose from the tolerated {rule.alert_rate:.2%} "
                f"to about {share:.2%} of events over the last ~{run} events; "
                f"evidence {t.score:.1f} crossed threshold {t.threshold:.1f}.", severity)

    def to_dict(self) -> dict:
        return {str(i): s.to_dict() for i, s in self.states.items()}

    def load(self, raw: dict) -> None:
        for key, state in raw.items():
            if int(key) in self.states:
                self.states[int(key)] = LaneState.from_dict(state)
