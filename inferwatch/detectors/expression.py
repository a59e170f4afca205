"""Business-rule expressions, parsed safely and evaluated on whole columns.

A small language, no ``eval``: comparisons (``== != < <= > >=``), arithmetic
(``+ - * /``), ``and``/``or``/``not``, ``in``/``not in`` a list literal, and
null tests (``is null``/``is not null``); names are columns (a feature,
``prediction`` or ``prediction.<output>``). :func:`compile_expression`
checks every name and type against the column kinds before any event is
read, and returns a function from a batch's columns to a boolean array.
A comparison with a missing value is false, like SQL's unknown.

>>> import numpy as np
>>> from inferwatch.detectors.types import CategoricalArray, NumericArray
>>> rule = compile_expression('amount > 10000 and country not in ["DE", "FR"]',
...                           {"amount": "numeric", "country": "categorical"})
>>> cols = {"amount": NumericArray(np.array([20000.0, 20000.0, 5.0, np.nan])),
...         "country": CategoricalArray.from_labels(["US", "DE", "US", "US"])}
>>> rule(cols).tolist()
[True, False, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np

from .types import CategoricalArray, Column, NumericArray

__all__ = ["ExpressionError", "compile_expression"]


class ExpressionError(ValueError):
    """An expression that does not parse or type-check; the message says where and why."""


class Condition(Protocol):
    """What :func:`compile_expression` returns: the vectorised condition, plus ``one`` and ``names``."""

    one: Callable[[Mapping[str, object]], bool]
    names: frozenset[str]

    def __call__(self, cols: Mapping[str, Column]) -> np.ndarray: ...


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    )""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    value: str
    at: int


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"unexpected character {text[pos:].lstrip()[:1]!r} at {pos}")
        group = m.lastgroup
        assert group is not None  # every alternative of _TOKEN is a named group
        value = m.group(group)
        kind = "kw" if group == "name" and value in _KEYWORDS else group
        out.append(_Tok(kind, value, m.start(group)))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


# A typed node: (kind, vector, scalar). kind is "bool", "number", "string" or "list".
# ``vector`` takes a batch's columns and returns numpy arrays; ``scalar`` takes one
# event's values (a float or None per numeric field, a str or None per label) and
# returns a Python value. Both come from the same parse, so they agree (tested).
_Node = tuple[str, Callable, Callable]

_OPERATORS = frozenset({"and", "or", "+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "in", "not", "is"})
_BINDING = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6}
MAX_LENGTH = 4096  # characters in one expression
MAX_DEPTH = 64  # nested parentheses and prefix operators
MAX_OPERATORS = 200  # evaluation recurses at most this deep (Python's own limit is 1000 frames)


class _Parser:
    def __init__(self, text: str, kinds: Mapping[str, str]) -> None:
        if len(text) > MAX_LENGTH:
            raise ExpressionError(f"the expression is {len(text)} characters long, over the cap of {MAX_LENGTH}")
        self.text, self.kinds = text, kinds
        self.toks = _tokens(text)
        self.i = 0
        self.depth = self.operators = 0
        self.names: set[str] = set()

    def deeper(self, at: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"the expression nests deeper than {MAX_DEPTH} levels (at {at})")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        if tok.value in _OPERATORS and tok.kind != "string":
            self.operators += 1
            if self.operators > MAX_OPERATORS:
                raise ExpressionError(f"the expression has more than {MAX_OPERATORS} operators (at {tok.at})")
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok.value != value:
            raise ExpressionError(f"expected {value!r} at {tok.at}, got {tok.value or 'the end'!r}")

    def parse(self) -> _Node:
        node = self.expr(0)
        if self.peek().kind != "end":
            raise ExpressionError(f"unexpected {self.peek().value!r} at {self.peek().at}")
        if node[0] != "bool":
            raise ExpressionError("a rule must be a condition (true or false), got a " + node[0])
        return node

    def expr(self, floor: int) -> _Node:
        self.deeper(self.peek().at)
        try:
            return self._expr(floor)
        finally:
            self.depth -= 1

    def _expr(self, floor: int) -> _Node:
        left = self.unary()
        while True:
            tok = self.peek()
            op = tok.value
            if op in ("and", "or") and _BINDING[op] > floor:
                self.take()
                left = self.logic(op, left, self.expr(_BINDING[op]), tok.at)
            elif op in ("+", "-", "*", "/") and _BINDING[op] > floor:
                self.take()
                left = self.arith(op, left, self.expr(_BINDING[op]), tok.at)
            elif op in ("<", "<=", ">", ">=", "==", "!=") and _BINDING["cmp"] > floor:
                self.take()
                left = self.compare(op, left, self.expr(_BINDING["cmp"]), tok.at)
            elif op in ("in", "not") and _BINDING["cmp"] > floor and self._is_membership():
                negate = self.take().value == "not"
                if negate:
                    self.expect("in")
                left = self.member(left, self.atom(), negate, tok.at)
            elif op == "is" and _BINDING["cmp"] > floor:
                self.take()
                negate = self.peek().value == "not"
                if negate:
                    self.take()
                self.expect("null")
                left = self.null_test(left, negate, tok.at)
            else:
                return left

    def _is_membership(self) -> bool:
        tok = self.peek()
        return tok.value == "in" or (tok.value == "not" and self.toks[self.i + 1].value == "in")

    def unary(self) -> _Node:
        tok = self.peek()
        if tok.value == "not":
            self.take()
            kind, inner, one = self.expr(_BINDING["not"])
            if kind != "bool":
                raise ExpressionError(f"'not' at {tok.at} needs a condition, got a {kind}")
            return "bool", lambda cols: ~inner(cols), lambda row: not one(row)
        if tok.value == "-":
            self.take()
            self.deeper(tok.at)
            kind, inner, one = self.unary()
            self.depth -= 1
            if kind != "number":
                raise ExpressionError(f"'-' at {tok.at} needs a number, got a {kind}")
            return "number", lambda cols: -inner(cols), lambda row: _neg(one(row))
        return self.atom()

    def atom(self) -> _Node:
        tok = self.take()
        if tok.kind == "number":
            number = float(tok.value)
            return "number", lambda cols: number, lambda row: number
        if tok.kind == "string":
            text = re.sub(r"\\(.)", r"\1", tok.value[1:-1])  # \" \' \\ stand for themselves
            return "string", lambda cols: text, lambda row: text
        if tok.value in ("true", "false"):
            truth = tok.value == "true"
            return "bool", lambda cols: np.bool_(truth), lambda row: truth
        if tok.value == "(":
            node = self.expr(0)
            self.expect(")")
            return node
        if tok.value == "[":
            items = []
            while self.peek().value != "]":
                kind, item, _ = self.atom()
                if kind not in ("number", "string"):
                    raise ExpressionError(f"list items must be numbers or strings (at {tok.at})")
                items.append((kind, item(None)))
                if self.peek().value == ",":
                    self.take()
            self.expect("]")
            kinds = {k for k, _ in items}
            if len(kinds) > 1:
                raise ExpressionError(f"list at {tok.at} mixes numbers and strings")
            listed = (kinds.pop() if kinds else "string", [v for _, v in items])
            return "list", lambda cols: listed, lambda row: listed
        if tok.kind == "name":
            return self.column(tok)
        raise ExpressionError(f"unexpected {tok.value or 'end'!r} at {tok.at}")

    def column(self, tok: _Tok) -> _Node:
        name = tok.value  # (a column named features.<x>: a feature named as a column of the prediction)
        if name not in self.kinds and name.startswith("features."):
            name = name[len("features."):]
        kind = self.kinds.get(name)
        if kind is None:
            raise ExpressionError(f"unknown field {name!r} at {tok.at} (known: {', '.join(sorted(self.kinds))})")
        self.names.add(name)
        if kind == "numeric":
            return "number", lambda cols: _numeric(cols, name), lambda row: row.get(name)
        return "string", lambda cols: _labels(cols, name), lambda row: row.get(name)

    def logic(self, op, left, right, at) -> _Node:
        if left[0] != "bool" or right[0] != "bool":
            raise ExpressionError(f"'{op}' at {at} joins conditions, got a {left[0]} and a {right[0]}")
        lf, rf, lo, ro = left[1], right[1], left[2], right[2]
        if op == "and":
            return "bool", lambda cols: lf(cols) & rf(cols), lambda row: lo(row) and ro(row)
        return "bool", lambda cols: lf(cols) | rf(cols), lambda row: lo(row) or ro(row)

    def arith(self, op, left, right, at) -> _Node:
        if left[0] != "number" or right[0] != "number":
            raise ExpressionError(f"'{op}' at {at} needs numbers, got a {left[0]} and a {right[0]}")
        lf, rf, lo, ro = left[1], right[1], left[2], right[2]
        fn = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": _divide}[op]
        one = _SCALAR_ARITH[op]

        def run(cols):
            with np.errstate(all="ignore"):  # overflow to inf and NaN are the data's, not errors
                return fn(lf(cols), rf(cols))
        return "number", run, lambda row: one(lo(row), ro(row))

    def compare(self, op, left, right, at) -> _Node:
        if left[0] != right[0] or left[0] not in ("number", "string"):
            raise ExpressionError(f"'{op}' at {at} compares a {left[0]} with a {right[0]}")
        lf, rf, lo, ro = left[1], right[1], left[2], right[2]
        if left[0] == "string" and op not in ("==", "!="):
            raise ExpressionError(f"'{op}' at {at}: labels can only be compared with == or !=")
        fn = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
              "==": np.equal, "!=": np.not_equal}[op]
        test = _SCALAR_COMPARE[op]

        def one(row):
            a, b = lo(row), ro(row)
            return a is not None and b is not None and test(a, b)

        if left[0] == "number":
            def run(cols):
                a, b = lf(cols), rf(cols)
                with np.errstate(invalid="ignore"):
                    return fn(a, b) & ~(np.isnan(a) | np.isnan(b))
            return "bool", run, one

        def run_labels(cols):
            a, b = lf(cols), rf(cols)
            known = _not_null(a) & _not_null(b)
            return fn(a, b) & known
        return "bool", run_labels, one

    def member(self, left, right, negate, at) -> _Node:
        if right[0] != "list":
            raise ExpressionError(f"'in' at {at} needs a list literal like [\"DE\", \"FR\"]")
        lf, lo = left[1], left[2]
        item_kind, values = right[1](None)
        if values and {"number": "number", "string": "string"}[item_kind] != left[0]:
            raise ExpressionError(f"'in' at {at} tests a {left[0]} against a list of {item_kind}s")
        wanted = frozenset(values)

        def run(cols):
            a = lf(cols)
            hit = np.isin(a, np.asarray(values, dtype=object if left[0] == "string" else float))
            known = _not_null(a)
            return (~hit if negate else hit) & known

        def one(row):
            a = lo(row)
            return a is not None and ((a in wanted) != negate)
        return "bool", run, one

    def null_test(self, left, negate, at) -> _Node:
        if left[0] not in ("number", "string"):
            raise ExpressionError(f"'is null' at {at} needs a field")
        lf, lo = left[1], left[2]
        if negate:
            return "bool", lambda cols: _not_null(lf(cols)), lambda row: lo(row) is not None
        return "bool", lambda cols: ~_not_null(lf(cols)), lambda row: lo(row) is None


def _finite_or_none(x: float) -> float | None:
    return x if x - x == 0.0 else None  # NaN and infinities are unknown, as in the vector path's isnan


def _neg(a):
    return None if a is None else -a


def _scalar(op):
    def run(a, b):
        if a is None or b is None:
            return None
        out = op(a, b)
        return None if out != out else out  # NaN is unknown
    return run


def _scalar_divide(a, b):
    if a is None or b is None or b == 0.0:
        return None
    return _finite_or_none(a / b)


_SCALAR_ARITH = {"+": _scalar(float.__add__), "-": _scalar(float.__sub__), "*": _scalar(float.__mul__),
                 "/": _scalar_divide}
_SCALAR_COMPARE = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__,
                   "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _divide(a, b):
    with np.errstate(all="ignore"):
        out = np.divide(a, b)
    return np.where(np.isfinite(out), out, np.nan)


def _numeric(cols: Mapping[str, Column], name: str) -> np.ndarray:
    col = cols[name]
    if not isinstance(col, NumericArray):
        raise ExpressionError(f"field {name!r} is not numeric in this batch")
    return col.values


def _labels(cols: Mapping[str, Column], name: str) -> np.ndarray:
    col = cols[name]
    if not isinstance(col, CategoricalArray):
        raise ExpressionError(f"field {name!r} is not categorical in this batch")
    table = np.array(list(col.categories) + [None], dtype=object)
    return table[col.codes]


def _not_null(values) -> np.ndarray | np.bool_:
    if isinstance(values, np.ndarray):
        if values.dtype == object:
            return values != None  # noqa: E711 (elementwise)
        return ~np.isnan(values)
    return np.bool_(values is not None)


def compile_expression(text: str, kinds: Mapping[str, str]) -> Condition:
    """Parse and type-check ``text`` against column kinds; return the vectorised condition.

    ``kinds`` maps a column name to ``"numeric"`` or ``"categorical"``.
    Raises :class:`ExpressionError` naming the position and the problem.
    The result also carries ``.one(row)``: the same condition on one event's
    plain values (``{"amount": 20.0, "country": None}``), for per-event paths.
    """
    parser = _Parser(text, kinds)
    _kind, run, one = parser.parse()

    def condition(cols: Mapping[str, Column]) -> np.ndarray:
        n = len(next(iter(cols.values()))) if cols else 0
        return np.broadcast_to(np.asarray(run(cols), dtype=bool), (n,)).copy()

    checked = cast(Condition, condition)  # a plain function, given the two attributes below
    checked.one = lambda row: bool(one(row))
    checked.names = frozenset(parser.names)
    return checked
