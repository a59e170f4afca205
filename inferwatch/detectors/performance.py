"""Per-event performance from predictions and their labels, and its label-free estimate.

A model's performance is watched as columns of a stream of its own, one
row per prediction that got its label, in the order the labels arrived:

* ``error_rate`` (categorical ``right`` / ``wrong``) for a classifier: a
  probability (a number in [0, 1], wrong when it is on the other side of
  0.5 from a 0/1 or false/true label) or a predicted class (wrong when it
  differs from the label's text);
* ``abs_error`` (numeric) for a regression: ``|label - prediction|``.

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
>>> col = outcome_columns(NumericArray(np.array([0.9, 0.2, 0.4])), [1, 1, 0])["error_rate"]
>>> [col.categories[c] for c in col.codes]
['right', 'wrong', 'right']
>>> estimate_columns(NumericArray(np.array([0.9, 0.5, 0.05])))["estimated_error_rate"].values.round(2).tolist()
[0.1, 0.5, 0.05]
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from .types import Alert, CategoricalArray, Column, NumericArray

__all__ = ["ESTIMATED", "METRICS", "as_performance", "calibration_gap", "estimate_columns", "is_probability",
           "labels_of", "outcome_columns"]

METRICS = ("error_rate", "abs_error")
ESTIMATED = "estimated_error_rate"
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def labels_of(labels: list) -> np.ndarray:
    """Binary labels as 1.0 / 0.0 (0, 1, booleans, or their text); NaN for anything else."""
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
    return np.array([float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else np.nan for x in labels])


def outcome_columns(predicted: Column, labels: list, probability: bool | None = None) -> dict[str, Column]:
    """The performance columns of predictions and their labels (one row each; a label that does not fit the
    prediction, a missing prediction: a missing row). ``probability``: the output is a probability (taken from
    the values when None)."""
    n = len(labels)
    if isinstance(predicted, CategoricalArray):
        text = [str(x).lower() if isinstance(x, bool) else str(x) for x in labels]
        shown = [predicted.categories[c] if c >= 0 else None for c in predicted.codes]
        codes = np.array([-1 if p is None or labels[i] is None else int(p != text[i]) for i, p in enumerate(shown)])
        return {"error_rate": CategoricalArray(codes.astype(np.int64), ("right", "wrong"))}
    values = predicted.values
    if probability is None:
        probability = is_probability(values)
    if probability:
        truth = labels_of(labels)
        known = ~np.isnan(truth) & ~np.isnan(values)
        codes = np.where(known, ((values >= 0.5) != (truth >= 0.5)).astype(np.int64), -1)
        return {"error_rate": CategoricalArray(codes, ("right", "wrong"))}
    return {"abs_error": NumericArray(np.abs(_numbers(labels) - values) if n else np.empty(0))}


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


_SHARE = re.compile(r"^error_rate: share of '(right|wrong)' (rose|fell) from ([0-9.]+)% to about ([0-9.]+)%")


def as_performance(alert: Alert, output: str, model: str | None = None) -> Alert:
    """An alert of a performance column, said as one: kind ``performance``, the metric as its detector, the
    model's output as its feature, ``model`` as its model (the id stays the column's: the same change, the
    same id).

    >>> from inferwatch.detectors.types import Alert
    >>> a = Alert("id", "firing", "m", "error_rate", "drift", "mix", "critical", 30.0, 27.0, 0.0, 5,
    ...           "error_rate: share of 'right' fell from 81.92% to about 74.38% over the last ~1565 events")
    >>> as_performance(a, "prediction").message
    'prediction: error rate rose from 18.08% to about 25.62% over the last ~1565 labelled predictions'
    """
    metric = alert.feature or ""
    message = f"{output} {alert.message}"
    said = _SHARE.match(alert.message)
    if said is not None:
        label, way, before, after = said.groups()
        if label == "right":
            way = "fell" if way == "rose" else "rose"
            before, after = f"{100 - float(before):.2f}", f"{100 - float(after):.2f}"
        message = (f"{output}: error rate {way} from {before}% to about {after}%"
                   + alert.message[said.end():].replace(" events", " labelled predictions", 1))
    return replace(alert, model=model or alert.model, kind="performance", detector=metric, feature=output,
                   message=message)
