"""Business-rule expressions: parsed without eval, type-checked up front, vectorised."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.detectors.expression import ExpressionError, compile_expression
from inferwatch.detectors.types import CategoricalArray, NumericArray

KINDS = {"amount": "numeric", "age": "numeric", "country": "categorical", "prediction": "numeric"}


def columns():
    return {
        "amount": NumericArray(np.array([20000.0, 50.0, np.nan, 300.0])),
        "age": NumericArray(np.array([30.0, 17.0, 40.0, np.nan])),
        "country": CategoricalArray.from_labels(["US", "DE", None, "FR"]),
        "prediction": NumericArray(np.array([0.9, 0.1, 0.5, 1.2])),
    }


@pytest.mark.parametrize("text, expected", [
    ("amount > 10000", [True, False, False, False]),
    ("amount / 100 >= 3", [True, False, False, True]),
    ("amount * 2 + 1 < 200", [False, True, False, False]),
    ("-amount < -100", [True, False, False, True]),
    ("country == 'DE'", [False, True, False, False]),
    ("country != 'DE'", [True, False, False, True]),
    ('country in ["DE", "FR"]', [False, True, False, True]),
    ('country not in ["DE", "FR"]', [True, False, False, False]),
    ("country is null", [False, False, True, False]),
    ("amount is not null and age is not null", [True, True, False, False]),
    ("age < 18 or prediction > 1", [False, True, False, True]),
    ("not (prediction >= 0 and prediction <= 1)", [False, False, False, True]),
    ("features.amount > 100 and not country == 'US'", [False, False, False, True]),
    ("age in [17, 40]", [False, True, True, False]),
    ("true", [True, True, True, True]),
    ("country == 'D\\'E' or country == \"Zürich\"", [False, False, False, False]),
])
def test_expressions(text, expected):
    assert compile_expression(text, KINDS)(columns()).tolist() == expected


@pytest.mark.parametrize("text, message", [
    ("amont > 3", "unknown field 'amont'"),
    ("country > 'DE'", "labels can only be compared"),
    ("amount == 'x'", "compares a number with a string"),
    ("amount + country > 1", "needs numbers"),
    ("amount and age", "joins conditions"),
    ("amount", "must be a condition"),
    ("amount > ", "unexpected"),
    ("country in 'DE'", "needs a list literal"),
    ("age in ['a']", "tests a number against a list of strings"),
    ("amount > 1 ; import os", "unexpected character"),
    ("__import__('os')", "unknown field '__import__'"),
    ("(amount > 1", "expected ')'"),
])
def test_bad_expressions_fail_at_compile_time_saying_why(text, message):
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_expression(text, KINDS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_expression_error(text):
    """Never another exception, never code execution: text is data."""
    try:
        rule = compile_expression(text, KINDS)
    except ExpressionError:
        return
    result = rule(columns())
    assert result.dtype == bool and result.shape == (4,)


def _rows(cols):
    """Each event of ``columns()`` as plain values: a float or None, a label or None."""
    out = []
    for j in range(4):
        row = {}
        for name, col in cols.items():
            if isinstance(col, NumericArray):
                v = float(col.values[j])
                row[name] = None if v != v else v
            else:
                code = int(col.codes[j])
                row[name] = None if code < 0 else col.categories[code]
        out.append(row)
    return out


_ATOMS = ["amount", "age", "prediction", "0", "1", "17", "1e308", "-2.5", "0.0"]
_LABELS = ["country", "'US'", "'DE'", "'Zürich'"]


@st.composite
def _number(draw, depth=0):
    if depth > 2 or draw(st.booleans()):
        return draw(st.sampled_from(_ATOMS))
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    return f"({draw(_number(depth + 1))} {op} {draw(_number(depth + 1))})"


@st.composite
def _condition(draw, depth=0):
    pick = draw(st.integers(0, 6 if depth < 2 else 3))
    if pick == 0:
        return f"{draw(_number())} {draw(st.sampled_from(['<', '<=', '>', '>=', '==', '!=']))} {draw(_number())}"
    if pick == 1:
        return f"{draw(st.sampled_from(_LABELS))} {draw(st.sampled_from(['==', '!=']))} {draw(st.sampled_from(_LABELS))}"
    if pick == 2:
        return f"{draw(st.sampled_from(['amount', 'country', 'age']))} is {draw(st.sampled_from(['', 'not ']))}null"
    if pick == 3:
        return f"country {draw(st.sampled_from(['in', 'not in']))} ['US', 'FR']"
    if pick == 4:
        return f"not ({draw(_condition(depth + 1))})"
    return f"({draw(_condition(depth + 1))}) {draw(st.sampled_from(['and', 'or']))} ({draw(_condition(depth + 1))})"


@settings(max_examples=400, deadline=None)
@given(_condition())
def test_per_event_evaluation_agrees_with_the_vectorised_one(text):
    rule = compile_expression(text, KINDS)
    cols = columns()
    assert [rule.one(row) for row in _rows(cols)] == rule(cols).tolist(), text
