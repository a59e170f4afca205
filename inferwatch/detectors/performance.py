"""Per-event performance from predictions and their labels, and its label-free estimate.

A model's performance is watched as columns of a stream of its own, one
row per prediction that got its label, in the order the labels arrived
(``labels.metrics`` chooses among them; all by default):

=====================  ==========================================================
a probability ``p``    ``error_rate`` (``right`` / ``wrong``: wrong when ``p`` is on
(binary label ``y``)   the other side of 0.5 from ``y``), ``log_loss``
                       (``-ln`` of the probability given to what happened, capped
                       at 13.8), ``brier`` (``(p - y)**2``), ``overconfidence``
                       (``p - y`` toward the predicted side, ``(p - y) *
                       sign(p - 0.5)``: 0 on average for calibrated scores,
                       above when the model is surer than it is right),
                       ``precision`` (right / wrong among the predicted
                       positives, ``p >= 0.5``), ``recall`` (among the positives)
a predicted class      ``error_rate`` (wrong when its text differs from the label's)
a regression           ``abs_error`` (``|y - prediction|``, its mean the MAE),
                       ``squared_error`` (its mean the MSE, RMSE squared),
                       ``bias`` (``prediction - y``)
=====================  ==========================================================

Read through a codebook fitted on the model's first labelled predictions,
these columns go through the same calibrated detectors as any column, so a
drop is caught with the drift budget and episode policy (a CUSUM on the
per-event loss), not by a threshold on a window.

The estimate needs no label: for a probability ``p`` the expected error of
one prediction is ``min(p, 1 - p)`` when ``p`` is calibrated (confidence-based
performance estimation, CBPE). ``estimated_error_rate`` is that column, one
row per prediction, in stream order; :func:`calibration_gap` says how far it
was from the realized error on labelled predictions.

>>> labels_of([1, 0, "true", None, "x", 0.7])
array([ 1.,  0.,  1., nan, nan, nan])
>>> cols = outcome_columns(NumericArray(np.array([0.9, 0.2, 0.4])), [1, 1, 0])
>>> [cols["error_rate"].categories[c] for c in cols["error_rate"].codes], cols["log_loss"].values.round(2).tolist()
(['right', 'wrong', 'right'], [0.11, 1.61, 0.51])
>>> cols["recall"].codes.tolist(), cols["precision"].codes.tolist()  # -1: not a positive / not predicted one
([0, 1, -1], [0, -1, -1])
>>> estimate_columns(NumericArray(np.array([0.9, 0.5, 0.05])))["estimated_error_rate"].values.round(2).tolist()
[0.1, 0.5, 0.05]
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from .config import LabelsConfig
from .types import Alert, CategoricalArray, Column, NumericArray

__all__ = ["ESTIMATED", "METRICS", "METRIC_COLUMNS", "as_performance", "calibration_gap", "estimate_columns",
           "is_probability", "labels_of", "outcome_columns"]

CLASSIFIER_METRICS = ("error_rate", "log_loss", "brier", "overconfidence", "precision", "recall")
REGRESSION_METRICS = ("abs_error", "squared_error", "bias")
METRICS = CLASSIFIER_METRICS + REGRESSION_METRICS
assert list(METRICS) == LabelsConfig().metrics  # the config's default: every metric
# how each metric's column is watched, where not inferred (error_rate, abs_error: as any column): a share of
# right among some predictions (their other rows are missing, by design: no missing-rate detector), or a mean
METRIC_COLUMNS = {"precision": ("categorical", ["mix"]), "recall": ("categorical", ["mix"]),
                  "log_loss": ("numeric", ["mean"]), "brier": ("numeric", ["mean"]),
                  "overconfidence": ("numeric", ["mean"]), "squared_error": ("numeric", ["mean"]),
                  "bias": ("numeric", ["mean"]), "label_delay": ("numeric", ["mean"]),
                  "label_coverage": ("categorical", ["mix", "new_category"])}
WORDS = {"error_rate": "error rate", "log_loss": "log loss", "brier": "Brier score",
         "overconfidence": "overconfidence (mean probability - label, toward the predicted side)",
         "precision": "precision", "recall": "recall", "abs_error": "mean absolute error",
         "squared_error": "mean squared error", "bias": "bias (mean prediction - label)"}
LOG_LOSS_CAP = -np.log(1e-6)
ESTIMATED = "estimated_error_rate"
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def labels_of(labels: list) -> np.ndarray:
    """Binary labels as 1.0 / 0.0 (0, 1, booleans, or their text); NaN for anything else."""
    if labels and set(map(type, labels)) == {bool}:  # the usual: JSON true / false
        return np.array(labels, dtype=np.float64)
    out = np.full(len(labels), np.nan)
    for i, label in enumerate(labels):
        if isinstance(label, bool) or (isinstance(label, (int, float)) and label in (0, 1)):
            out[i] = float(label)
        elif isinstance(label, str) and label.strip().lower() in _TRUE | _FALSE:
            out[i] = 1.0 if label.strip().lower() in _TRUE else 0.0
    return out


def is_probability(values: np.ndarray) -> bool:
    """Every present value in [0, 1] (and at least one present)."""
    present = values[~np.isnan(values)]
    return bool(present.size) and bool(((present >= 0.0) & (present <= 1.0)).all())


def _numbers(labels: list) -> np.ndarray:
    """Regression labels as numbers: JSON numbers, or numbers written as text (``"51.234"``); NaN otherwise.

    >>> _numbers([51.2, "51.25", " 7 ", True, "n/a", None]).tolist()
    [51.2, 51.25, 7.0, nan, nan, nan]
    """
    return np.array([_number(x) for x in labels], dtype=np.float64)


_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _number(x) -> float:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    if isinstance(x, str) and _NUMBER_TEXT.fullmatch(x):
        return float(x)
    return np.nan


def outcome_columns(predicted: Column, labels: list, probability: bool | None = None,
                    metrics: tuple[str, ...] | list[str] = METRICS) -> dict[str, Column]:
    """The performance columns (of ``metrics``, those that fit the output) of predictions and their labels, one
    row each (a label that does not fit the prediction, a missing prediction: a missing row). ``probability``:
    the output is a probability (taken from the values when None)."""
    n = len(labels)
    right_wrong = ("right", "wrong")
    if isinstance(predicted, CategoricalArray):
        if "error_rate" not in metrics:
            return {}
        text = [str(x).lower() if isinstance(x, bool) else str(x) for x in labels]
        shown = [predicted.categories[c] if c >= 0 else None for c in predicted.codes]
        codes = np.array([-1 if p is None or labels[i] is None else int(p != text[i]) for i, p in enumerate(shown)])
        return {"error_rate": CategoricalArray(codes.astype(np.int64), right_wrong)}
    values = predicted.values
    if probability is None:
        probability = is_probability(values)
    out: dict[str, Column] = {}
    if probability:
        truth = labels_of(labels)
        known = ~np.isnan(truth) & ~np.isnan(values)
        said, real = values >= 0.5, truth >= 0.5
        wrong = (said != real).astype(np.int64)
        shares = {"error_rate": known, "precision": known & said, "recall": known & real}
        for name, rows in shares.items():
            if name in metrics:
                out[name] = CategoricalArray(np.where(rows, wrong, -1), right_wrong)
        with np.errstate(invalid="ignore", divide="ignore"):
            given = np.where(real, values, 1.0 - values)  # the probability given to what happened
            numbers = {"log_loss": np.minimum(-np.log(given), LOG_LOSS_CAP), "brier": (values - truth) ** 2,
                       "overconfidence": (values - truth) * np.where(said, 1.0, -1.0)}
        for name, col in numbers.items():
            if name in metrics:
                out[name] = NumericArray(np.where(known, col, np.nan))
        return out
    residual = values - _numbers(labels) if n else np.empty(0)
    numbers = {"abs_error": np.abs(residual), "squared_error": residual ** 2, "bias": residual}
    return {name: NumericArray(col) for name, col in numbers.items() if name in metrics}


def estimate_columns(predicted: NumericArray) -> dict[str, Column]:
    """The expected error of each probability, ``min(p, 1 - p)`` (NaN where there is none)."""
    p = predicted.values
    return {ESTIMATED: NumericArray(np.minimum(p, 1.0 - p))}


def calibration_gap(predicted: np.ndarray, labels: list) -> tuple[float, float, float, int]:
    """(estimated error rate, realized error rate, sampling error of the realized one, labelled predictions)
    over the probabilities with a binary label: the estimate is trusted when the gap is within about two
    sampling errors.

    >>> est, real, se, n = calibration_gap(np.array([0.9, 0.8, 0.3, 0.1]), [1, 1, 0, 1])
    >>> round(est, 3), real, n
    (0.175, 0.25, 4)
    """
    truth = labels_of(labels)
    known = ~np.isnan(truth) & ~np.isnan(predicted)
    n = int(known.sum())
    if not n:
        return float("nan"), float("nan"), float("nan"), 0
    p, y = predicted[known], truth[known]
    realized = float(((p >= 0.5) != (y >= 0.5)).mean())
    estimated = float(np.minimum(p, 1.0 - p).mean())
    return estimated, realized, float(np.sqrt(max(realized * (1 - realized), 1e-12) / n)), n


_SHARE = re.compile(r"^(?:\[[^\]]*\] )?(\w+): share of '(right|wrong)' (rose|fell) from ([0-9.]+)% to about "
                    r"([0-9.]+)%")
_SEGMENT = re.compile(r"^(\[[^\]]*\]) ")
_SPAN = re.compile(r" over the last ~(\d+) events")


def run_length(alert: Alert) -> int:
    """The events a firing's evidence gathered over, as its message says (1 when it does not say).

    >>> run_length(Alert("id", "firing", "m", "c", "drift", "mean", "warning", 9.0, 8.0, 0.0, 5,
    ...                  "c: median 1 -> 2 over the last ~42 events; evidence 9.0 crossed threshold 8.0."))
    42
    """
    found = _SPAN.search(alert.message)
    return int(found.group(1)) if found else 1


def as_performance(alert: Alert, output: str, model: str | None = None,
                   levels: tuple[float, float] | None = None) -> Alert:
    """An alert of a performance column, said as one: kind ``performance``, the metric as its detector, the
    model's output as its feature, ``model`` as its model (the id stays the column's: the same change, the
    same id; a segment's alert has the segment in its ``segment`` field and its words, not in its feature).
    ``levels``: a mean metric's value (before, now), for the words.

    >>> from inferwatch.detectors.types import Alert
    >>> a = Alert("id", "firing", "m", "error_rate", "drift", "mix", "critical", 30.0, 27.0, 0.0, 5,
    ...           "error_rate: share of 'right' fell from 81.92% to about 74.38% over the last ~1565 events")
    >>> as_performance(a, "prediction").message
    'prediction: error rate rose from 18.08% to about 25.62% over the last ~1565 labelled predictions'
    >>> b = replace(a, feature="log_loss", detector="mean", message="log_loss: median 0.2 -> 0.3 over the last "
    ...             "~900 events; evidence 30.0 crossed threshold 27.0.")
    >>> as_performance(b, "prediction", levels=(0.412, 0.5301)).message
    'prediction: log loss rose from 0.412 to about 0.530 over the last ~900 labelled predictions; evidence 30.0 \
crossed threshold 27.0.'
    """
    metric = alert.feature or ""
    message = f"{output} {alert.message}"
    said = _SHARE.match(alert.message)
    span = _SPAN.search(alert.message)
    segment = _SEGMENT.match(alert.message)
    feature, output = output, f"{output} {segment.group(1)}" if segment else output  # "prediction [region=eu]"
    if said is not None:
        name, label, way, before, after = said.groups()
        if (label == "right") == (name == "error_rate"):  # the error rate is the share of wrong ones
            way = "fell" if way == "rose" else "rose"
            before, after = f"{100 - float(before):.2f}", f"{100 - float(after):.2f}"
        message = (f"{output}: {WORDS.get(name, name)} {way} from {before}% to about {after}%"
                   + alert.message[said.end():].replace(" events", " labelled predictions", 1))
    elif levels is not None and span is not None and alert.status == "firing":
        before, now = levels
        way = "rose" if now >= before else "fell"
        message = (f"{output}: {WORDS.get(metric, metric)} {way} from {_level(before)} to about {_level(now)}"
                   + alert.message[span.start():].replace(" events", " labelled predictions", 1))
    return replace(alert, model=model or alert.model, kind="performance", detector=metric, feature=feature,
                   message=message)


def _level(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 100 else f"{x:,.1f}"
