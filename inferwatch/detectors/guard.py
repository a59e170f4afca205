"""Guardrails: rules checked on whole batches, one decision per event.

Each rule yields a violation mask over the batch (vectorised); an event's
action is the strongest among the rules it violates
(block > fallback > fix > flag > pass), and every violation is listed. The
decision record is DESIGN.md section 4, plus ``fixed`` (feature values a
``fix`` rule replaced). Rules are compiled against the stream's column kinds
before any event is read: an unknown field or an ill-typed expression fails
at start-up.

>>> import numpy as np
>>> from inferwatch.detectors.config import RuleConfig
>>> from inferwatch.detectors.types import Batch, NumericArray
>>> guard = BatchGuard([RuleConfig(kind="range", field="prediction", min=0, max=1, action="fix")],
...                    {"prediction": "numeric"})
>>> batch = Batch("m", np.array(["a", "b"], dtype=object), np.zeros(2),
...               {"prediction": NumericArray(np.array([0.3, 1.7]))})
>>> [(d.action, d.prediction) for d in guard.decide(batch)]
[('pass', 0.3), ('fix', 1.0)]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .config import RuleConfig
from .expression import Condition, ExpressionError, compile_expression
from .types import Batch, CategoricalArray, Decision, NumericArray, Value, Violation

__all__ = ["ACTIONS", "BatchGuard"]

ACTIONS = ("pass", "flag", "fix", "fallback", "block")
_RANK = {a: i for i, a in enumerate(ACTIONS)}


class BatchGuard:
    """Compiled rules of one model."""

    def __init__(self, rules: list[RuleConfig], kinds: Mapping[str, str]) -> None:
        self.rules = rules
        self.kinds = dict(kinds)
        self.checks: list[Condition | None] = []
        for i, rule in enumerate(rules):
            where = f"rules[{i}] ({rule.label})"
            if rule.field is not None and rule.field not in self.kinds:
                raise ValueError(f"{where}: unknown field {rule.field!r} (known: {', '.join(sorted(self.kinds))})")
            if rule.fallback_output is not None and rule.fallback_output not in self.kinds:
                raise ValueError(f"{where}: unknown fallback_output {rule.fallback_output!r}")
            if rule.kind == "range":
                assert rule.field is not None  # RuleConfig requires a field for a range
                if self.kinds[rule.field] != "numeric":
                    raise ValueError(
                        f"{where}: a range needs a numeric field, {rule.field!r} is {self.kinds[rule.field]}")
            if rule.kind == "allowed":
                assert rule.field is not None and rule.values is not None  # RuleConfig requires both
                if self.kinds[rule.field] == "numeric":
                    if any(isinstance(v, str) for v in rule.values):
                        raise ValueError(f"{where}: {rule.field!r} is numeric, its allowed values must be numbers")
            if rule.kind == "expression":
                assert rule.expression is not None  # RuleConfig requires it for an expression rule
                try:
                    self.checks.append(compile_expression(rule.expression, self.kinds))
                except ExpressionError as exc:
                    raise ValueError(f"{where}: {exc}") from None
            else:
                self.checks.append(None)
        self.outputs = [name[11:] for name in sorted(self.kinds) if name.startswith("prediction.")]
        self.ranks = np.array([_RANK[r.action] for r in rules], dtype=np.int8)
        self.one = [_scalar_check(rule, check) for rule, check in zip(rules, self.checks)]
        self.fields = sorted({r.field for r in rules if r.field}
                             | {r.fallback_output for r in rules if r.fallback_output}
                             | {n for c in self.checks if c is not None for n in c.names} | {"prediction"})

    def violations(self, batch: Batch) -> np.ndarray:
        """Boolean matrix (rules x events)."""
        n = len(batch)
        out = np.zeros((len(self.rules), n), dtype=bool)
        for i, (rule, check) in enumerate(zip(self.rules, self.checks)):
            if check is not None:
                out[i] = check(batch.columns)
                continue
            assert rule.field is not None  # every rule but an expression checks a field
            col = batch.columns.get(rule.field)
            missing = _missing(col, n)
            if rule.kind == "not_null":
                out[i] = missing
            elif rule.kind == "range":
                assert isinstance(col, NumericArray)  # a range rule's field is numeric (checked at start-up)
                values = col.values
                with np.errstate(invalid="ignore"):
                    low = values < rule.min if rule.min is not None else np.zeros(n, bool)
                    high = values > rule.max if rule.max is not None else np.zeros(n, bool)
                out[i] = (low | high) & ~missing
            elif rule.kind == "allowed":
                out[i] = ~_member(col, rule.values, n) & ~missing
        return out

    def decide(self, batch: Batch, hits: np.ndarray | None = None) -> list[Decision]:
        """One decision record per event of ``batch`` (``hits``: its :meth:`violations`, if known)."""
        hits = self.violations(batch) if hits is None else hits
        plain = _PlainColumns(batch)
        return [self._record(str(batch.event_ids[j]), batch.model, np.flatnonzero(hits[:, j]).tolist(), plain, j)
                for j in range(len(batch))]

    def decide_one(self, event_id: str, model: str, row: Mapping[str, object]) -> Decision:
        """The decision for one event given as plain values (the per-event path).

        ``row`` maps a field to a float or None (numeric) or a label or None
        (categorical, booleans as ``"true"``/``"false"``); same rules, same
        record as :meth:`decide`.
        """
        violated = [i for i, check in enumerate(self.one) if check(row)]
        return self._record(event_id, model, violated, _RowColumns(row), 0)

    def _record(self, event_id: str, model: str, violated: list[int], plain, j: int) -> Decision:
        rules = self.rules
        action = ACTIONS[max((self.ranks[i] for i in violated), default=0)]
        original: Value | dict[str, Value]
        if self.outputs:  # named outputs: the prediction is their object
            original = {name: plain[f"prediction.{name}"][j] for name in self.outputs}
        else:
            original = plain["prediction"][j]
        prediction = dict(original) if isinstance(original, dict) else original
        fixed: dict[str, Value] = {}
        for i in violated:
            rule = rules[i]
            if rule.action != "fix":
                continue
            assert rule.field is not None  # a fix rule checks a field (an expression cannot fix)
            value = _fix(rule, plain[rule.field][j])
            if rule.field.startswith("prediction.") and isinstance(prediction, dict):
                if action == "fix":  # the output, corrected in the prediction the decision carries
                    prediction[rule.field[11:]] = value
            elif rule.field != "prediction":
                fixed[rule.field] = value
            elif action == "fix":  # a stronger action decides the prediction instead
                prediction = value
        if action == "fallback":
            rule = next(rules[i] for i in violated if rules[i].action == "fallback")
            prediction = rule.fallback_value if rule.fallback_output is None else plain[rule.fallback_output][j]
        elif action == "block":
            prediction = None
        return Decision(event_id, model, action, prediction, original,
                        [Violation(rules[i].label, rules[i].field, _message(rules[i], plain, j)) for i in violated],
                        fixed or None)


def _missing(col, n: int) -> np.ndarray:
    if col is None:
        return np.ones(n, dtype=bool)
    if isinstance(col, NumericArray):
        return np.isnan(col.values)
    return col.codes < 0


def _member(col, values, n: int) -> np.ndarray:
    if isinstance(col, CategoricalArray):
        wanted = {str(v) for v in values}
        lookup = np.array([c in wanted for c in col.categories] + [False])
        return lookup[col.codes]
    if isinstance(col, NumericArray):
        return np.isin(col.values, np.asarray([float(v) for v in values]))
    return np.zeros(n, dtype=bool)


def _plain(col, n: int) -> list:
    """Python values of a column (None for missing), for the records."""
    if col is None:
        return [None] * n
    if isinstance(col, NumericArray):
        return [None if v != v else float(v) for v in col.values.tolist()]
    labels = list(col.categories) + [None]
    return [labels[c] for c in col.codes.tolist()]


def _fix(rule: RuleConfig, value):
    if rule.kind == "range":
        low = rule.min if rule.min is not None else -np.inf
        high = rule.max if rule.max is not None else np.inf
        return float(min(max(value, low), high))
    return rule.fix_value


def _scalar_check(rule: RuleConfig, check):
    """The rule on one event's plain values: True when violated."""
    if check is not None:
        return check.one
    name = rule.field
    if rule.kind == "not_null":
        return lambda row: row.get(name) is None
    if rule.kind == "range":
        low = rule.min if rule.min is not None else -np.inf
        high = rule.max if rule.max is not None else np.inf
        return lambda row: (v := row.get(name)) is not None and not (low <= v <= high)
    assert rule.values is not None  # what is left is an allowed rule, which has values
    wanted = frozenset(str(v) if isinstance(v, str) else float(v) for v in rule.values)
    labels = frozenset(str(v) for v in rule.values)
    return lambda row: (v := row.get(name)) is not None and v not in (labels if isinstance(v, str) else wanted)


class _RowColumns(dict):
    """One event's plain values, shaped like :class:`_PlainColumns` (row 0)."""

    def __init__(self, row: Mapping[str, object]) -> None:
        super().__init__()
        self.row = row

    def __missing__(self, name: str) -> list:
        return [self.row.get(name)]


class _PlainColumns(dict):
    """Python values of a batch's columns, converted once, on first use."""

    def __init__(self, batch: Batch) -> None:
        super().__init__()
        self.batch = batch

    def __missing__(self, name: str) -> list:
        values = self[name] = _plain(self.batch.columns.get(name), len(self.batch))
        return values


def _message(rule: RuleConfig, plain: _PlainColumns, j: int) -> str:
    if rule.kind == "expression":
        return f"violates {rule.expression}"
    value = plain[rule.field][j]
    if rule.kind == "not_null":
        return f"{rule.field} is missing"
    if rule.kind == "range":
        if rule.min is None:
            return f"{rule.field}={value} above the maximum {rule.max}"
        if rule.max is None:
            return f"{rule.field}={value} below the minimum {rule.min}"
        return f"{rule.field}={value} outside [{rule.min}, {rule.max}]"
    return f"{rule.field}={value!r} is not an allowed value"
