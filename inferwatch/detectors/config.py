"""The monitor's configuration, validated before any event is read.

Declared, typed and strict: an unknown key, a wrong type or a value out of
range is an error that names the field. Reading the YAML file is the I/O
layer's job (``inferwatch.streams.config_file``); this module only checks values.

>>> cfg = MonitorConfig.model_validate({"default": {"alert_policy": {"cooldown_seconds": 300}},
...                                     "models": {"fraud": {"warmup_events": 5000}}})
>>> cfg.for_model("fraud").warmup_events, cfg.for_model("other").warmup_events
(5000, 10000)
>>> cfg.for_model("fraud").alert_policy.cooldown_seconds  # inherited from default
300.0
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Action", "RuleConfig", "DetectorName", "FalseAlarmBudget", "AlertPolicyConfig", "ColumnConfig",
    "LabelsConfig", "ModelConfig", "Limits", "MonitorConfig",
]

DetectorName = Literal["mean", "scale", "shape", "mix", "new_category", "missing"]
NUMERIC_DETECTORS: tuple[str, ...] = ("mean", "scale", "shape", "missing")
CATEGORICAL_DETECTORS: tuple[str, ...] = ("mix", "new_category", "missing")


class _Strict(BaseModel):
    # inf and NaN are refused everywhere: an infinite budget or cool-down would switch monitoring off silently
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FalseAlarmBudget(_Strict):
    """How rare false alarms must be, under no change.

    ``column_events_per_false_alarm`` counts events times monitored columns:
    the default 1e9 is at most one false alarm every 2.3 days on average for
    a 50-column model at 100 events/s (a month at 8 events/s), shared by
    every detector and lane of the model.
    """

    column_events_per_false_alarm: float = Field(default=1e9, gt=10.0, le=1e15)


class AlertPolicyConfig(_Strict):
    """Episodes: one ``firing`` and one ``resolved`` per (model, column, detector).

    ``cooldown_seconds`` (event time) holds a resolution back until the
    detector has stayed clear that long, so a flapping detector stays one
    episode. ``renotify_seconds`` re-sends a firing alert while an episode
    lasts (off by default). ``resolve_fraction`` is the share of its
    threshold every lane must fall to before an episode can close, the lane
    that fired having stayed there for as many events as the firing's run.
    ``incident_window_seconds``: an episode opening this long (event time)
    after the model's last one, with none open, starts a new incident.
    """

    cooldown_seconds: float = Field(default=0.0, ge=0.0, le=366 * 86400)
    incident_window_seconds: float = Field(default=600.0, ge=0.0, le=366 * 86400)
    renotify_seconds: float | None = Field(default=None, gt=0.0, le=366 * 86400)
    resolve_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


Metric = Literal["error_rate", "log_loss", "brier", "overconfidence", "precision", "recall", "abs_error",
                 "squared_error", "bias"]


class LabelsConfig(_Strict):
    """How long a prediction waits for its label (and a label for its prediction), and how many wait.

    ``max_delay`` is seconds of event time, or text such as ``7d``, ``12h``, ``30m``. ``settle`` (the same
    units; 0: off) holds each labelled prediction that long after it was made, and watches the held ones
    in prediction order: for labels whose delay depends on the outcome (fraud confirmed in days,
    legitimate payments in months), set it to the delay by which nearly all labels are in.

    >>> LabelsConfig(max_delay="2d").max_delay, LabelsConfig(max_delay=90).max_delay, LabelsConfig(settle="5m").settle
    (172800.0, 90.0, 300.0)
    """

    max_delay: float = Field(default=7 * 86400, gt=0.0, le=366 * 86400)
    settle: float = Field(default=0.0, ge=0.0, le=366 * 86400)
    max_pending: int = Field(default=1_000_000, ge=1, le=100_000_000)
    # the performance metrics watched (those that fit each output; see inferwatch.detectors.performance)
    metrics: list[Metric] = Field(default_factory=lambda: list(get_args(Metric)), min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _duration(cls, data):
        for name in ("max_delay", "settle"):
            if isinstance(data, dict) and isinstance(data.get(name), str):
                text = data[name].strip()
                unit = _UNITS.get(text[-1:])
                try:
                    seconds = float(text[:-1]) * unit if unit else float(text)
                except ValueError:
                    raise ValueError(f"{name}: expected seconds or a duration such as 7d, 12h, 30m; got {text!r}") \
                        from None
                data = {**data, name: seconds}
        return data


class ColumnConfig(_Strict):
    """A column's kind (booleans are monitored as a two-label categorical), role, detectors, and whether it is on.

    ``role`` (inferred when not given, see ``inferwatch.detectors.roles``):
    ``identifier`` (nearly unique values: the missing rate and the repeat
    rate are watched), ``text`` (free text: the missing rate and the length),
    ``timestamp`` (epoch times: the missing rate and the age, event time -
    its time), ``numeric_text`` (numbers sent as text: the missing rate and
    the numbers), ``code`` (integers that name things, a merchant category
    or a zip code: watched as numbers and as labels, ``<name>.code``), ``categorical``
    or ``numeric`` (watched by its kind).
    """

    type: Literal["numeric", "categorical", "boolean"] | None = None
    # None: inferred from the baseline
    role: Literal["identifier", "text", "timestamp", "numeric_text", "code", "categorical", "numeric"] | None = None
    detectors: list[DetectorName] | None = None
    enabled: bool = True


Action = Literal["pass", "flag", "fix", "fallback", "block"]


class RuleConfig(_Strict):
    """One guardrail. ``kind`` decides which fields apply:

    * ``range`` (``field``, ``min`` and/or ``max``): ``fix`` clips to the range;
    * ``not_null`` (``field``): ``fix`` puts ``fix_value`` in its place;
    * ``allowed`` (``field``, ``values``): ``fix`` puts ``fix_value`` in its place;
    * ``expression`` (``expression``): a business rule, see ``inferwatch.detectors.expression``.

    ``fallback`` replaces the prediction by ``fallback_value`` or by the output
    named in ``fallback_output``; ``block`` withholds it. ``alert_rate`` is the
    share of events the rule may violate before a ``guardrail`` alert opens
    (``null``: never alert on this rule).
    """

    kind: Literal["range", "not_null", "allowed", "expression"]
    name: str | None = None
    field: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[str | float] | None = None
    expression: str | None = None
    action: Action = "flag"
    fix_value: str | float | None = None
    fallback_value: float | str | bool | None = None
    fallback_output: str | None = None
    alert_rate: float | None = Field(default=0.01, gt=0.0, lt=0.95)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> RuleConfig:
        needs = {"range": ("field",), "not_null": ("field",), "allowed": ("field", "values"),
                 "expression": ("expression",)}
        for name in needs[self.kind]:
            if getattr(self, name) in (None, []):
                raise ValueError(f"a {self.kind} rule needs '{name}'")
        if self.kind == "range":
            if self.min is None and self.max is None:
                raise ValueError("a range rule needs 'min' or 'max'")
            if self.min is not None and self.max is not None and self.max < self.min:
                raise ValueError(f"max must be >= min={self.min}, got {self.max}")
        if self.action == "fix" and self.kind in ("not_null", "allowed") and self.fix_value is None:
            raise ValueError(f"action 'fix' on a {self.kind} rule needs 'fix_value'")
        if self.action == "fix" and self.kind == "expression":
            raise ValueError("an expression rule cannot 'fix'; use flag, fallback or block")
        if self.action == "fallback" and self.fallback_value is None and self.fallback_output is None:
            raise ValueError("action 'fallback' needs 'fallback_value' or 'fallback_output'")
        return self

    @property
    def label(self) -> str:
        return self.name or (f"{self.kind}:{self.field}" if self.field else f"expression:{self.expression}")


class ModelConfig(_Strict):
    columns: dict[str, ColumnConfig] = Field(default_factory=dict)
    monitor_unlisted: bool = True
    segments: list[str] = Field(default_factory=list)
    # each model_version with a baseline of its own (the reference, or warm-up, holds two or more versions of at
    # least 1,000 events each) is a segment too: a canary that goes wrong is found on its own traffic
    version_segments: bool = True
    max_segment_values: int = Field(default=50, ge=1, le=10_000)
    warmup_events: int = Field(default=10_000, ge=200, le=10_000_000)
    max_reference_events: int = Field(default=200_000, ge=200, le=10_000_000)
    block_size: int = Field(default=16, ge=1, le=4096)  # for new models: a saved model keeps its own
    bins: int = Field(default=16, ge=2, le=256)
    max_categories: int = Field(default=16, ge=1, le=256)
    false_alarm_budget: FalseAlarmBudget = Field(default_factory=FalseAlarmBudget)
    alert_policy: AlertPolicyConfig = Field(default_factory=AlertPolicyConfig)
    rules: list[RuleConfig] = Field(default_factory=list)
    labels: LabelsConfig = Field(default_factory=LabelsConfig)

    @model_validator(mode="after")
    def _derived_detectors(self) -> ModelConfig:
        """An id's ``<name>.repeat`` and a number's ``<name>.decimals`` are categorical: said at start-up."""
        for name, cc in self.columns.items():
            wrong = [d for d in cc.detectors or () if d not in CATEGORICAL_DETECTORS]
            if name.endswith((".repeat", ".decimals")) and wrong:
                raise ValueError(f"columns.{name}.detectors: {wrong} do not apply to a categorical column "
                                 f"(use {list(CATEGORICAL_DETECTORS)})")
        return self

    def detectors_for(self, column: str, kind: str) -> tuple[str, ...]:
        allowed = NUMERIC_DETECTORS if kind == "numeric" else CATEGORICAL_DETECTORS
        declared = self.columns.get(column)
        chosen = declared.detectors if declared is not None else None
        if chosen is None:
            return allowed
        wrong = [d for d in chosen if d not in allowed]
        if wrong:
            raise ValueError(f"columns.{column}.detectors: {wrong} do not apply to a {kind} column "
                             f"(use {list(allowed)})")
        return tuple(chosen)


class Limits(_Strict):
    """Caps on what one message may carry; a message over them is a dead letter.

    ``max_dead_letter_bytes`` caps a dead-letter record (its ``raw`` is the
    original in base64, 4/3 of its size); by default it is large enough for
    any message under ``max_message_bytes``, and the dead-letter topic is
    created with that size limit. A dead letter over it keeps the first
    bytes of the original with its size and digest (``truncated``).

    The model name comes from the event, so models are bounded too: a name
    over ``max_model_name_bytes``, a new model past ``max_models`` per
    pipeline (one file or topic replay, one worker partition), or, with
    ``only_listed_models``, a model not listed under ``models:`` makes the
    event a dead letter naming ``model``.

    >>> Limits().dead_letter_bytes
    1463638
    """

    max_message_bytes: int = Field(default=1 << 20, ge=64, le=1 << 30)
    max_features: int = Field(default=1000, ge=1, le=1_000_000)
    max_dead_letter_bytes: int | None = Field(default=None, ge=4096, le=1 << 30)
    max_model_name_bytes: int = Field(default=256, ge=1, le=65_536)
    max_models: int = Field(default=1000, ge=1, le=1_000_000)
    only_listed_models: bool = False

    @property
    def dead_letter_bytes(self) -> int:
        if self.max_dead_letter_bytes is not None:
            return self.max_dead_letter_bytes
        return -(-self.max_message_bytes * 4 // 3) + 65_536


def _merged(base, over):
    """``over`` on top of ``base``: dictionaries merge key by key, anything else in ``over`` wins."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    return {**base, **{key: _merged(base.get(key), value) if key in base else value for key, value in over.items()}}


class MonitorConfig(_Strict):
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    default: ModelConfig = Field(default_factory=ModelConfig)
    limits: Limits = Field(default_factory=Limits)
    batch_size: int = Field(default=32_768, ge=1, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _inherit_default(cls, raw):
        """A model listed under ``models`` starts from ``default`` and overrides what it sets: mappings merge
        key by key (``columns``, ``alert_policy``), lists and values (``rules``, ``segments``) replace."""
        if isinstance(raw, dict) and isinstance(raw.get("models"), dict):
            base = raw.get("default") if isinstance(raw.get("default"), dict) else {}
            models = {name: _merged(base, {} if model is None else model) for name, model in raw["models"].items()}
            raw = {**raw, "models": models}
        return raw

    @model_validator(mode="after")
    def _columns_consistent(self) -> MonitorConfig:
        for name, model in {**self.models, "default": self.default}.items():
            for col, cc in model.columns.items():
                if cc.type and cc.detectors:
                    try:
                        model.detectors_for(col, cc.type)
                    except ValueError as exc:
                        raise ValueError(f"models.{name}.{exc}") from None
        return self

    def for_model(self, model: str) -> ModelConfig:
        return self.models.get(model, self.default)

    def has_rules(self) -> bool:
        return any(m.rules for m in (*self.models.values(), self.default))
