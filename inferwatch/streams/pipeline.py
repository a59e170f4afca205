"""The pipeline step every driver shares: decode, guard and monitor a block of raw events.

A :class:`Pipeline` is built once from the config, a sample of the stream
(to infer the schema: which features, outputs and tags, and their kinds) and
an optional reference. :meth:`Pipeline.step` takes a block of raw messages
(JSON lines) with the input index of the first one, and returns alerts,
guard decisions and dead letters keyed by input index; the driver turns an
index into a position (a file's line, a partition's offset) and does the
I/O. No I/O happens here: file replay, topic replay, the worker's partition
step, the backtest and the three guard interfaces are thin drivers over it.

The state (schema, monitor) goes to and from bytes with a version and a
fingerprint of the config it was built with, so a stored state is never
read with another config by mistake (:class:`inferwatch.errors.StateError`).

>>> from inferwatch.detectors.config import MonitorConfig
>>> line = b'{"event_id":"e%d","model":"m","timestamp":%d,"features":{"x":%d}}'
>>> lines = [line % (i, 1_793_491_200 + i, i % 7) for i in range(300)] + [b"oops"]
>>> pipe = Pipeline.build(MonitorConfig(), lines[:100])
>>> result = pipe.step(lines)
>>> result.events, [(d.index, d.error.split(" (")[0]) for d in result.dead]
(300, [(300, 'invalid JSON')])
>>> again = Pipeline.from_bytes(pipe.to_bytes(), MonitorConfig())
>>> again.monitor.models["m"].events
300
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import numpy as np
import orjson

from ..detectors.config import MonitorConfig
from ..detectors.guard import BatchGuard
from ..detectors.monitor import BLOCK_BEFORE_SAVED, Monitor, concat_batches
from ..detectors.types import Alert, Batch, CategoricalArray, Decision, TextArray
from ..errors import ConfigError, StateError
from .decode import UNLISTED, DeadLetter, Decoded, Decoder, Lines, Schema, feature_of, fits, infer_schema, is_output
from .labels import PerformanceWatch

__all__ = ["Pipeline", "StepResult", "Guards", "Observer", "config_fingerprint", "monitor_of", "never_seen",
           "SCHEMA_SAMPLE_LINES"]

SCHEMA_SAMPLE_LINES = 1000  # lines of the stream (and of the reference) the schema is inferred from
STREAM_MODEL = "(stream)"  # the pseudo-model whose column ``dead_letters`` is the stream's unreadable share
NEW_KEYS_SAMPLE = 64  # lines of each step looked at for columns a known model's schema lacks
OWN_SAMPLE_LINES = 64  # lines of a model seen for the first time that its schema is inferred from
EVENTS_PER_MODEL_STEP = 512  # a step grows with the models it feeds, so each sees about this many events
MAX_STEP_LINES = 524_288
PIPELINE_VERSION = 4  # 2: schemas of their own for some models; 3: the stream's last event time; 4: in parts

Observer = Callable[[Batch, "np.ndarray | None", Monitor, list], None]


def config_fingerprint(config: MonitorConfig) -> str:
    """A short digest of what decides detection and decisions: ``models`` and ``default`` (key order aside).

    ``limits``, ``batch_size`` and ``labels`` are left out: they decide which
    messages are read and how long labels are waited for, not what a state means.

    >>> a = MonitorConfig.model_validate({"models": {"a": {}, "b": {"warmup_events": 500}}})
    >>> b = MonitorConfig.model_validate({"models": {"b": {"warmup_events": 500}, "a": {}}, "limits": {"max_models": 9}})
    >>> config_fingerprint(a) == config_fingerprint(b), config_fingerprint(a) == config_fingerprint(MonitorConfig())
    (True, False)
    """
    meaning = config.model_dump(mode="json", include={"models", "default"})
    for model in [meaning["default"], *meaning["models"].values()]:
        model.pop("labels", None)  # the label join's waits and the incidents' window decide no detection:
        model.get("alert_policy", {}).pop("incident_window_seconds", None)  # states kept before them stay valid
        model.get("alert_policy", {}).pop("resolve_fraction", None)  # nor when an episode closes (its default was 0.5)
        model.pop("version_segments", None)  # a state says which segments it has; states saved before it stay valid
        # a saved model keeps the block size it was built with (its state says it), so the config's only
        # decides new models; the fingerprint holds the default of the states saved before they said it
        model["block_size"] = BLOCK_BEFORE_SAVED
    return hashlib.sha256(orjson.dumps(meaning, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass
class StepResult:
    """What one block produced, keyed by input index; alerts and decisions in input order."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    decisions: list[tuple[int, Decision]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    events: int = 0
    blank: int = 0
    per_model: dict[str, int] = field(default_factory=dict)  # events monitored, by model
    invalid: int = 0  # fields set missing for their type (the events counted)

    @property
    def models(self) -> set[str]:
        return set(self.per_model)


class Guards:
    """A :class:`BatchGuard` per model, compiled against one schema (the stream's, or a model's own).

    A model whose rules name fields this schema lacks (a named output where
    the stream's prediction is a number) is not an error: its events get a
    schema of their own (:meth:`fits`). Rules that fit neither this schema nor
    the model's own config fail at start-up, naming the rule.
    """

    def __init__(self, config: MonitorConfig, schema: Schema, only: str | Iterable[str] | None = None) -> None:
        """``only``: compile the rules of that model alone (a model's own schema; ``"default"``: the
        default's), or of those models."""
        only = {only} if isinstance(only, str) else None if only is None else set(only)
        self.kinds = {name: _rule_kind(kind) for name, kind in schema.kinds().items()}
        self.guards: dict[str, BatchGuard] = {}
        self.elsewhere: set[str] = set()  # models (or "default") whose rules need a schema of their own
        self._config = config
        for model, mc in [*config.models.items(), ("default", config.default)]:
            if only is not None and model not in only:
                self.elsewhere.add(model)
                continue
            try:
                self.guards[model] = BatchGuard(mc.rules, self.kinds)
            except ValueError:
                try:
                    BatchGuard(mc.rules, {**self.kinds, **{k: _rule_kind(v) for k, v in
                                                           _config_kinds(config, model).items()}})
                except ValueError as exc:
                    raise ConfigError(f"models.{model}.{exc}" if model != "default" else f"default.{exc}") from None
                self.elsewhere.add(model)

    def key(self, model: str) -> str:
        return model if model in self._config.models else "default"

    def fits(self, model: str) -> bool:
        """Whether ``model``'s rules can judge events decoded by this schema."""
        return self.key(model) not in self.elsewhere

    def for_model(self, model: str) -> BatchGuard:
        guard = self.guards.get(model) or self.guards.get("default")
        if guard is None or not self.fits(model):
            raise ValueError(f"model {model!r}: its rules need a schema of its own")  # the pipeline gives it one
        return guard


def as_sent(decisions: list, schema: Schema) -> list:
    """Decisions whose boolean prediction (or boolean outputs) are booleans again: the rules read a boolean
    as the label ``"true"`` / ``"false"``, a caller tests ``if decision.prediction``."""
    kinds = schema.prediction
    if kinds == "boolean":
        for d in decisions:
            d.prediction, d.original_prediction = _boolean(d.prediction), _boolean(d.original_prediction)
    elif isinstance(kinds, dict) and "boolean" in kinds.values():
        names = [name for name, kind in kinds.items() if kind == "boolean"]
        for d in decisions:
            for value in (d.prediction, d.original_prediction):
                if isinstance(value, dict):
                    value.update({name: _boolean(value[name]) for name in names if name in value})
    return decisions


def _boolean(value):
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


def _rule_kind(kind: str) -> str:
    return "numeric" if kind == "numeric" else "categorical"


def _config_kinds(config: MonitorConfig, key: str) -> dict[str, str]:
    """The kinds that a model's config alone gives its fields (``key``: the model, or ``"default"``)."""
    return infer_schema([], config, model=UNLISTED if key == "default" else key).kinds()


def rule_names(config: MonitorConfig, key: str, kinds: dict[str, str]) -> set[str]:
    """Every field a model's rules name (fields, expressions' columns, fallback outputs), compiled against
    ``kinds`` (rule kinds); empty if they do not compile there."""
    rules = (config.models[key] if key != "default" else config.default).rules
    try:
        guard = BatchGuard(rules, kinds)
    except ValueError:
        return set()
    names = {r.field for r in rules} | {r.fallback_output for r in rules}
    names |= {n for check in guard.checks if check is not None for n in check.names}
    return {n for n in names if n is not None}


PERFORMANCE_FIELD = "performance"  # the label join, when the pipeline has one (see to_parts)

class Pipeline:
    """Decode, guard and monitor; the state is the schema and the monitor."""

    def __init__(self, config: MonitorConfig, schema: Schema, monitor: Monitor | None = None,
                 only: str | Iterable[str] | None = None) -> None:
        """``only``: the pipeline of one model's guard (:class:`Guards`)."""
        self.config = config
        self.schema = schema
        self.decoder = Decoder(schema, config.limits)
        self.guards = Guards(config, schema, only)
        self.monitor = monitor if monitor is not None else Monitor(config)
        self.reference_events: int | None = None  # set by fit_reference
        self.reference_models: set[str] = set()
        self.reference_cut: dict[str, tuple[int, int]] = {}  # model -> (events its baseline took, events given)
        self.own: dict[str, tuple[Schema, Decoder, Guards]] = {}  # models whose events do not fit ``schema``
        self.last_time = -np.inf  # the latest event time seen: an unreadable message's time
        self.stream = Monitor(config)  # the stream's own pseudo-model, STREAM_MODEL: its dead-letter rate
        self.performance: PerformanceWatch | None = None  # with labels (replay --labels): see streams/labels.py
        self._handed: set[str] = set()  # digests of the fixed parts to_parts gave out (a store has them)
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """:func:`config_fingerprint` of the config (worked out once)."""
        if self._fingerprint is None:
            self._fingerprint = config_fingerprint(self.config)
        return self._fingerprint

    @classmethod
    def build(cls, config: MonitorConfig, sample: Iterable[bytes],
              reference: Iterable[Lines] | None = None) -> Pipeline:
        """Infer the schema from ``sample`` (and the reference's first lines); fit the reference if given.

        ``reference`` is the reference's messages in blocks (a file's chunks).
        """
        blocks = list(reference) if reference is not None else []
        lines = [line for line in sample if line and line.strip()][:SCHEMA_SAMPLE_LINES]
        for block in blocks:
            if len(lines) >= 2 * SCHEMA_SAMPLE_LINES:
                break
            lines += [line for line in block if line.strip()][:2 * SCHEMA_SAMPLE_LINES - len(lines)]
        pipe = cls(config, infer_schema(lines, config, stream_tags(config)))
        if blocks:
            pipe.fit_reference(blocks)
        return pipe

    def step_lines(self, least: int) -> int:
        """How many messages a step should take: ``least``, or more when many models share the stream.

        Each model's step has a fixed cost (a pass per column), so with 1,000
        models a step of 32,768 messages would give each about 33 events; the
        step grows to about ``EVENTS_PER_MODEL_STEP`` per model (at most
        ``MAX_STEP_LINES``). Detection does not depend on step sizes.
        """
        return max(least, min(EVENTS_PER_MODEL_STEP * len(self.monitor.models), MAX_STEP_LINES))

    def fit_reference(self, blocks: Iterable[Lines]) -> int:
        """Take each model's baseline from reference events; invalid lines are skipped. Returns the events used."""
        per_model: dict[str, list[Batch]] = defaultdict(list)
        wrong: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # model -> column -> kinds
        first = 0
        for block in blocks:
            decoded = self._own_schemas(self.decoder.decode(block, first, repair=True), block, first, False)
            for batch, rows in zip(decoded.batches, decoded.rows):
                before = sum(len(b) for b in per_model[batch.model])
                per_model[batch.model].append(batch)
                room = self.config.for_model(batch.model).max_reference_events - before  # (the baseline's rows)
                for index in rows[:max(room, 0)].tolist() if decoded.invalid else ():
                    for column, why in decoded.invalid.get(index, ()):
                        wrong[batch.model][column].add(why)
            first += len(block)
        for model, parts in sorted(per_model.items()):
            self.monitor.fit_reference(concat_batches(parts), wrong.get(model))
        self.reference_events = sum(len(b) for parts in per_model.values() for b in parts)
        self.reference_models = set(per_model)
        for model, parts in sorted(per_model.items()):  # the baseline takes the first max_reference_events
            held, cap = sum(len(b) for b in parts), self.config.for_model(model).max_reference_events
            if held > cap:
                self.reference_cut[model] = (cap, held)
        return self.reference_events

    def never_seen(self) -> list[str]:
        """The models, and the columns of seen models, that the config names but the stream never carried."""
        return never_seen(self.config, self.monitor.models)

    def step(self, lines: Lines, first_index: int = 0, decisions: bool = False,
             observer: Observer | None = None, messages: bool = False) -> StepResult:
        """Decode, guard and monitor ``lines``; indices count from ``first_index``.

        Rule violations are computed once per model batch: they make the
        decisions (when ``decisions``) and feed the guardrail alerts. A
        feature or output of the wrong type is set missing for the monitor
        (the event counts, a ``type_changed`` alert says so); a guard with
        rules is strict: with ``decisions`` such an event gets no decision but
        a dead letter naming the field.
        ``observer(batch, hits, monitor, alerts)`` sees each batch after the
        core (backtests record their traces with it). ``messages``: the lines
        are Kafka messages, and an empty one is a dead letter (a file's blank
        line is skipped).
        """
        self._new_keys(lines)
        decoded = self._admitted(self.decoder.decode(lines, first_index, messages, repair=True), lines, first_index,
                                 count=True)
        decoded = self._own_schemas(decoded, lines, first_index, messages)
        out = self._start(decoded)
        out.invalid = sum(len(v) for v in decoded.invalid.values())
        alerts: list[tuple[int, str, str, Alert]] = []
        refused: list[int] = []
        for batch, rows in zip(decoded.batches, decoded.rows):
            guard = self._guards_of(batch.model).for_model(batch.model)
            hits = guard.violations(batch) if guard.rules else None
            if decisions:
                made = list(zip(rows.tolist(), as_sent(guard.decide(batch, hits), self._schema_of(batch.model))))
                if decoded.invalid and guard.rules:  # a guard is strict: a field of the wrong type is refused
                    refused += [i for i, _ in made if i in decoded.invalid]
                    made = [(i, d) for i, d in made if i not in decoded.invalid]
                out.decisions += made
            found = self.monitor.process(batch, hits, _invalid_rows(decoded.invalid, rows))
            found += self.monitor.take_incidents(batch.model)
            if observer is not None:
                observer(batch, hits, self.monitor, found)
            alerts += [(int(rows[a.row]), _order(a), a.detector, a) for a in found]
            if self.performance is not None:
                alerts += self.performance.predictions(batch, rows, first_index)
        alerts += self._watch_dead_letters(decoded, first_index)
        if self.performance is not None:
            alerts += self.performance.arrive(self.last_time)
        if refused:
            out.dead += [DeadLetter.of(*_field_problem(decoded.invalid[i][0]), i, lines[i - first_index])
                         for i in refused]
            out.dead.sort(key=lambda d: d.index)
        alerts.sort(key=lambda a: a[:3])
        out.alerts = [(index, alert) for index, _, _, alert in alerts]
        out.decisions.sort(key=lambda d: d[0])
        return out

    def labels_arrived(self) -> StepResult:
        """Labels given since the last step (a live worker's, with no event to step): those known by the
        stream's clock are joined now; their alerts."""
        out = StepResult()
        if self.performance is not None:
            out.alerts = [(i, a) for i, _, _, a in sorted(self.performance.arrive(self.last_time),
                                                          key=lambda a: a[:3])]
        return out

    def finish_labels(self) -> StepResult:
        """The end of the stream, with labels: the labels still to come arrive; their alerts."""
        out = StepResult()
        if self.performance is not None:
            out.alerts = [(i, a) for i, _, _, a in sorted(self.performance.finish(), key=lambda a: a[:3])]
        return out

    def _watch_dead_letters(self, decoded: Decoded, first_index: int) -> list[tuple[int, str, str, Alert]]:
        """The share of unreadable messages, watched like a column: ``dead_letters`` of the pseudo-model
        ``(stream)``, in message order, baselined on the stream's first ``warmup_events`` messages."""
        dead = np.asarray(sorted({d.index for d in decoded.dead}), dtype=np.int64)
        read = np.concatenate(decoded.rows) if decoded.rows else np.empty(0, dtype=np.int64)
        if not dead.size and not read.size:
            return []
        index = np.concatenate([read, dead])
        times = np.concatenate([b.times for b in decoded.batches] + [np.full(dead.size, np.nan)])
        order = np.argsort(index, kind="stable")
        index, times = index[order], times[order]
        filled = np.where(np.isnan(times), -np.inf, times)
        filled = np.maximum.accumulate(np.maximum(filled, self.last_time))  # an unreadable message: the last time
        filled[~np.isfinite(filled)] = 0.0
        self.last_time = float(filled[-1])
        flag = np.isin(index, dead).astype(np.int64)  # code 0: "dead letter", 1: "read"
        no_ids = TextArray(b"", np.zeros(len(index) + 1, dtype=np.int64))  # a message has no id: its position says
        batch = Batch(STREAM_MODEL, no_ids, filled,
                      {"dead_letters": CategoricalArray(1 - flag, ("dead letter", "read"))})
        found = self.stream.process(batch) + self.stream.take_incidents(STREAM_MODEL)
        return [(int(index[a.row]), _order(a), a.detector, a) for a in found]

    def _schema_of(self, model: str) -> Schema:
        own = self.own.get(model)
        return own[0] if own is not None else self.schema

    def _guards_of(self, model: str) -> Guards:
        own = self.own.get(model)
        return own[2] if own is not None else self.guards

    def _own_schemas(self, decoded: Decoded, lines: Lines, first_index: int, messages: bool) -> Decoded:
        """Each model with a schema of its own decoded by it: a model seen for the first time gets one when
        its events do not fit the stream's schema (other kinds, other outputs, columns the stream never had)."""
        batches, kept_rows, changed = [], [], False
        for batch, rows in zip(decoded.batches, decoded.rows):
            model = batch.model
            if model not in self.own and model not in self.monitor.models:
                sample = [lines[i - first_index] for i in rows[:OWN_SAMPLE_LINES].tolist()]
                schema = infer_schema(sample, self.config, stream_tags(self.config), model)
                if not fits(schema, self.schema) or not self.guards.fits(model):
                    self._adopt(model, schema)
            if model not in self.own:
                batches.append(batch)
                kept_rows.append(rows)
                continue
            changed = True
            again = self.own[model][1].decode([lines[i - first_index] for i in rows.tolist()], 0, messages,
                                              repair=True)
            for i in rows.tolist():
                decoded.invalid.pop(i, None)
            batches += again.batches
            kept_rows += [rows[r] for r in again.rows]
            decoded.dead += [replace(d, index=int(rows[d.index])) for d in again.dead]
            decoded.invalid.update({int(rows[k]): v for k, v in again.invalid.items()})
        if changed:
            decoded.batches, decoded.rows = batches, kept_rows
            decoded.dead.sort(key=lambda d: d.index)
        return decoded

    def _new_keys(self, lines: Lines) -> None:
        """Look at a few lines spread over the block: a known model whose events carry a feature or an output
        its schema lacks gets its schema extended (the monitor gives such a column a baseline of its own)."""
        if not len(lines) or not self.monitor.models:
            return
        picks = np.unique(np.linspace(0, len(lines) - 1, min(NEW_KEYS_SAMPLE, len(lines))).astype(np.int64))
        by_model: dict[str, list[bytes]] = defaultdict(list)
        for i in picks.tolist():
            try:
                model = orjson.loads(lines[i]).get("model")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(model, str) and model in self.monitor.models:
                by_model[model].append(lines[i])
        for model, sample in by_model.items():
            current = self.own[model][0] if model in self.own else self.schema
            found = infer_schema(sample, self.config, stream_tags(self.config), model)
            features = {k: v for k, v in found.features.items() if k not in current.features}
            prediction = current.prediction
            if isinstance(found.prediction, dict) and isinstance(prediction, dict):
                outputs = {k: v for k, v in found.prediction.items() if k not in prediction}
                prediction = {**prediction, **outputs} if outputs else prediction
            if features or prediction is not current.prediction:
                self._adopt(model, replace(current, features={**current.features, **features}, prediction=prediction))

    def _adopt(self, model: str, schema: Schema) -> None:
        """``model``'s events decoded by a schema of their own, with every field its rules name (a field its
        events lack is a missing value), and judged by its own rules alone."""
        key = self.guards.key(model)
        known = {**self.schema.kinds(), **_config_kinds(self.config, key), **schema.kinds()}
        names = rule_names(self.config, key, {k: _rule_kind(v) for k, v in known.items()})
        extra = {feature_of(n): known[n] for n in names
                 if n in known and not is_output(n) and feature_of(n) not in schema.features}
        if extra:
            schema = replace(schema, features={**schema.features, **extra})
        self.own[model] = (schema, Decoder(schema, self.config.limits), Guards(self.config, schema, key))

    def decide(self, lines: Lines, first_index: int = 0, messages: bool = False) -> StepResult:
        """Decode and guard ``lines`` (no monitoring): a decision per valid event, dead letters for the rest."""
        decoded = self._admitted(self.decoder.decode(lines, first_index, messages), lines, first_index, count=False)
        out = self._start(decoded)
        for batch, rows in zip(decoded.batches, decoded.rows):
            if not self.guards.fits(batch.model):  # (a guard's: an event read as another model's than it was sent)
                out.dead += [DeadLetter.of("model", f"{batch.model[:80]!r}: read as another model's event "
                                           "(a duplicated key?)", int(i), lines[int(i) - first_index]) for i in rows]
                continue
            out.decisions += zip(rows.tolist(), as_sent(self.guards.for_model(batch.model).decide(batch), self.schema))
        out.decisions.sort(key=lambda d: d[0])
        out.dead.sort(key=lambda d: d.index)
        return out

    def _admitted(self, decoded: Decoded, lines: Lines, first_index: int, count: bool) -> Decoded:
        """The decoded batches whose model may be monitored; the others' events become dead letters.

        The model name comes from the event, so it is bounded: its length, the
        allow-list (``limits.only_listed_models``) and, when ``count``, the
        number of models this pipeline keeps state for (``limits.max_models``).
        """
        limits = self.config.limits
        known = set(self.monitor.models)
        kept_batches, kept_rows = [], []
        for batch, rows in zip(decoded.batches, decoded.rows):
            model = batch.model
            why = None
            if len(model.encode()) > limits.max_model_name_bytes:
                why = f"name of {len(model.encode())} bytes, over the cap of {limits.max_model_name_bytes}"
            elif model == STREAM_MODEL:
                why = f"{model!r} is the name inferwatch gives the stream itself (its dead-letter rate)"
            elif limits.only_listed_models and model not in self.config.models:
                why = f"{model[:80]!r} is not listed under models: (limits.only_listed_models)"
            elif count and model not in known and len(known) >= limits.max_models:
                why = f"{model[:80]!r} would be model number {len(known) + 1}, over the cap of {limits.max_models}"
            if why is None:
                known.add(model)
                kept_batches.append(batch)
                kept_rows.append(rows)
                continue
            decoded.dead += [DeadLetter.of("model", why, int(i), lines[int(i) - first_index]) for i in rows]
        if len(kept_batches) < len(decoded.batches):
            decoded.batches, decoded.rows = kept_batches, kept_rows
            decoded.dead.sort(key=lambda d: d.index)
        return decoded

    @staticmethod
    def _start(decoded: Decoded) -> StepResult:
        per_model: dict[str, int] = {}
        for b in decoded.batches:
            per_model[b.model] = per_model.get(b.model, 0) + len(b)
        return StepResult(dead=decoded.dead, events=decoded.events, blank=decoded.blank,
                          per_model=per_model)

    def to_parts(self, everything: bool = False) -> tuple[bytes, dict[str, bytes]]:
        """The state as a store keeps it: (head, fields).

        The head holds the schema, the config fingerprint, the model names and
        the stream's own monitor; the fields are the state of each model changed
        since the last call (``model:<name>``) and each codebook-and-lanes part
        not handed out before (``fixed:<digest>``: written once, shared by
        digest). A store that keeps the fields of earlier calls and overwrites
        these has the whole state. ``everything``: every model and part.
        With labels, the label join's whole state is one more field, ``performance``.
        """
        if everything:
            self.monitor.dirty.update(self.monitor.models)
            self._handed.clear()
        models, blobs = self.monitor.take_parts()
        fields = {f"model:{name}": data for name, data in models.items()}
        fields.update({f"fixed:{d}": data for d, data in blobs.items() if d not in self._handed})
        self._handed.update(blobs)
        if self.performance is not None:  # the label join (a live worker's labels topic): rewritten each time
            fields[PERFORMANCE_FIELD] = self.performance.to_bytes()
        head = msgspec.msgpack.encode({"version": PIPELINE_VERSION, "config": self.fingerprint(),
                                       "schema": self.schema.to_dict(), "models": sorted(self.monitor.models),
                                       "own": {m: own[0].to_dict() for m, own in sorted(self.own.items())},
                                       "last_time": self.last_time, "stream": self.stream.to_bytes()})
        return head, fields

    @classmethod
    def from_parts(cls, head: bytes, fields: Mapping[str, bytes], config: MonitorConfig) -> Pipeline:
        """The pipeline saved by :meth:`to_parts`; :class:`StateError` if it was built otherwise or is unreadable."""
        raw = _head(head)
        fingerprint = config_fingerprint(config)
        if raw.get("config") != fingerprint:
            raise StateError(f"the pipeline state was built with another config (fingerprint {raw.get('config')!r}, "
                             f"this config is {fingerprint!r})")
        try:
            schema = Schema.from_dict(raw["schema"])
            monitor = monitor_of(head, fields, config)
            own = {m: Schema.from_dict(d) for m, d in raw["own"].items()}
            last_time, stream = float(raw["last_time"]), Monitor.from_bytes(raw["stream"], config)
        except StateError:
            raise
        except Exception as exc:  # a document that decodes but is not a state: name what broke
            raise StateError(f"the pipeline state is unreadable ({type(exc).__name__}: {exc})") from None
        pipe = cls(config, schema, monitor)
        pipe.last_time, pipe.stream = last_time, stream
        pipe._handed = {k[len("fixed:"):] for k in fields if k.startswith("fixed:")}
        if PERFORMANCE_FIELD in fields:
            pipe.performance = PerformanceWatch.from_bytes(fields[PERFORMANCE_FIELD], config)
        for model, model_schema in own.items():
            pipe._adopt(model, model_schema)
        return pipe

    def to_bytes(self) -> bytes:
        """The whole state in one document (:meth:`to_parts` with everything)."""
        head, fields = self.to_parts(everything=True)
        return msgspec.msgpack.encode({"head": head, "fields": fields})

    @classmethod
    def from_bytes(cls, data: bytes, config: MonitorConfig) -> Pipeline:
        """The pipeline saved by :meth:`to_bytes`; :class:`StateError` if it was built otherwise or is unreadable."""
        try:
            raw = msgspec.msgpack.decode(data, type=dict[str, Any])
            head, fields = raw["head"], raw["fields"]
        except (msgspec.DecodeError, KeyError) as exc:
            raise StateError(f"the pipeline state does not decode ({type(exc).__name__}: {exc})") from None
        return cls.from_parts(head, fields, config)


def _head(head: bytes) -> dict:
    try:
        raw = msgspec.msgpack.decode(head)
    except msgspec.DecodeError as exc:
        raise StateError(f"the pipeline state does not decode ({exc})") from None
    if not isinstance(raw, dict) or raw.get("version") != PIPELINE_VERSION:
        found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
        raise StateError(f"the pipeline state has version {found!r}, this inferwatch reads {PIPELINE_VERSION}")
    return raw


def _field_problem(wrong: tuple[str, str]) -> tuple[str, str]:
    """(field, why) as a dead letter names it: ``features.<name>`` for a feature."""
    column, why = wrong
    return (column if is_output(column) else f"features.{feature_of(column)}"), why


def _order(alert: Alert) -> str:
    """An alert's place among those of one message: by column; an incident record after the alert it follows."""
    return "\U0010ffff" if alert.kind == "incident" else alert.feature or ""


def _invalid_rows(invalid: dict[int, list[tuple[str, str]]],
                  rows: np.ndarray) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Column -> (batch rows whose value was set missing for its type, what each was)."""
    if not invalid:
        return {}
    out: dict[str, tuple[list[int], list[str]]] = {}
    for row, index in enumerate(rows.tolist()):
        for column, why in invalid.get(index, ()):
            found, whys = out.setdefault(column, ([], []))
            found.append(row)
            whys.append(why)
    return {column: (np.asarray(found, dtype=np.int64), whys) for column, (found, whys) in out.items()}


def never_seen(config: MonitorConfig, models: Mapping[str, Any]) -> list[str]:
    """The models the config names that ``models`` (name -> ModelMonitor) lacks, and the columns it names
    that a calibrated model neither watches nor has seen (a column still taking its baseline was seen)."""
    out = []
    for model, mc in sorted(config.models.items()):
        mon = models.get(model)
        if mon is None:
            out.append(f"model {model!r}")
            continue
        if not mon.calibrated:
            continue
        out += [f"column {name!r} of model {model!r}" for name, cc in sorted(mc.columns.items())
                if cc.enabled and name not in mon.columns and name not in mon.waiting]
    return out


def monitor_of(head: bytes, fields: Mapping[str, bytes], config: MonitorConfig | None = None) -> Monitor:
    """The monitor of a state saved by :meth:`Pipeline.to_parts` (any config: read-only, for ``inferwatch status``)."""
    raw = _head(head)
    try:
        names = list(raw["models"])
        missing = [n for n in names if f"model:{n}" not in fields]
        if missing:
            raise StateError(f"the state lists {len(missing)} model(s) with no state field, e.g. {missing[0][:80]!r}")
        blobs = {k[len("fixed:"):]: v for k, v in fields.items() if k.startswith("fixed:")}
        return Monitor.from_parts({n: fields[f"model:{n}"] for n in names}, blobs, config or MonitorConfig())
    except StateError:
        raise
    except Exception as exc:
        raise StateError(f"the pipeline state is unreadable ({type(exc).__name__}: {exc})") from None


def stream_tags(config: MonitorConfig) -> tuple[str, ...]:
    """Every tag any model segments by: the decoder reads these."""
    return tuple(sorted({t for m in [*config.models.values(), config.default] for t in m.segments}))
