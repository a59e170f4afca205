"""Decode inference events (JSON lines) into columnar batches and dead letters.

The fast path hands a whole micro-batch to polars' NDJSON reader with a
fixed schema (one pass in Rust, columns out). A line polars rejects sends
its half of the batch back for a retry, halving until the bad lines stand
alone; each becomes a dead letter naming the field at fault and why. The
same schema decides every line, so a line's fate never depends on its
neighbours or on how the stream was cut into batches.

Lenience, on purpose: a JSON number or boolean where a string is expected
(``"event_id": 7``) is taken as its text, and an integer is a number.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Union

import msgspec
import numpy as np
import orjson
import polars as pl

from ..detectors.config import Limits, MonitorConfig
from ..detectors.monitor import VERSION
from ..detectors.types import Batch, CategoricalArray, Column, NumericArray, TextArray
from .lines import LineBlock
from .timeparse import EARLIEST, LATEST, epoch_seconds, from_epoch, in_range, rfc3339_one, rfc3339_seconds

__all__ = ["unwatched_fields", "Schema", "DeadLetter", "Decoded", "Decoder", "infer_schema", "shrink_dead_letter", "dead_letter_shrinker",
           "SAFE_DEAD_LETTER_BYTES", "event_times", "models_and_times"]

# A dead letter that fits any Kafka topic's default size limit (message.max.bytes, 1,048,588):
# the stand-in for one a dead-letter topic with a smaller limit than ours refused.
SAFE_DEAD_LETTER_BYTES = 900_000

Kind = str  # "numeric" | "categorical" | "boolean"
ENUM_LABELS = 4096  # categorical columns with at most this many labels in a batch are coded through an Enum
_POLARS = {"numeric": pl.Float64, "categorical": pl.String, "boolean": pl.Boolean}


@dataclass(frozen=True)
class Schema:
    """Which features, prediction outputs and tags a stream carries, and their kinds."""

    features: dict[str, Kind]
    prediction: Union[Kind, dict[str, Kind], None] = None
    tags: tuple[str, ...] = ()
    version: bool = False  # read the events' ``model_version`` as the segment of that name (see VERSION)

    def polars(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "event_id": pl.String,
            "model": pl.String,
            "timestamp": pl.String,
            "features": pl.Struct({k: _POLARS[v] for k, v in self.features.items()} or {"__none__": pl.Null}),
        }
        if isinstance(self.prediction, dict):
            schema["prediction"] = pl.Struct({k: _POLARS[v] for k, v in self.prediction.items()})
        elif self.prediction is not None:
            schema["prediction"] = _POLARS[self.prediction]
        if self.tags:
            schema["tags"] = pl.Struct({t: pl.String for t in self.tags})
        if self.version:
            schema[VERSION] = pl.String  # (any JSON value is read as its text: a version is never a dead letter)
        return schema

    def to_dict(self) -> dict:
        return {"features": dict(self.features), "prediction": self.prediction, "tags": list(self.tags),
                "version": self.version}

    @classmethod
    def from_dict(cls, raw: dict) -> Schema:
        return cls(dict(raw["features"]), raw["prediction"], tuple(raw["tags"]), bool(raw.get("version", False)))

    def kinds(self) -> dict[str, Kind]:
        """Kind of every column: features (see :func:`feature_column`), then ``prediction`` or
        ``prediction.<output>``."""
        kinds = {feature_column(k): v for k, v in self.features.items()}
        if isinstance(self.prediction, dict):
            kinds.update({f"prediction.{k}": v for k, v in self.prediction.items()})
        elif self.prediction is not None:
            kinds["prediction"] = self.prediction
        return kinds

    def columns(self) -> list[str]:
        names = [feature_column(k) for k in self.features]
        if isinstance(self.prediction, dict):
            names += [f"prediction.{k}" for k in self.prediction]
        elif self.prediction is not None:
            names.append("prediction")
        return names


Lines = Union[list[bytes], LineBlock]


class _DeadLetterRecord(msgspec.Struct):
    """A dead letter as the topic carries it (see :meth:`DeadLetter.record`); bytes are encoded as base64."""

    error: str
    source: dict
    raw: bytes


_DEAD_JSON = msgspec.json.Encoder()


@dataclass(frozen=True)
class DeadLetter:
    """An input that is not a valid event: why, where, and its exact bytes.

    ``field`` is the field at fault (``features.amount``), None when the
    input as a whole is wrong; ``error`` is the whole message.
    """

    error: str
    index: int
    raw: bytes
    field: str | None = None

    @classmethod
    def of(cls, field: str | None, reason: str, index: int, raw: bytes) -> DeadLetter:
        return cls(f"{field}: {reason}" if field else reason, index, raw, field)

    def encoded(self, source: dict, cap: int | None = None) -> bytes:
        """:meth:`record` as JSON bytes; one typed encode when it surely fits under ``cap`` (the common case).

        >>> d = DeadLetter("invalid JSON", 7, b"{oops")
        >>> d.encoded({"line": 7}, 4096) == orjson.dumps(d.record({"line": 7}, 4096))
        True
        """
        if cap is None or 4 * len(self.raw) // 3 + 6 * len(self.error) + 520 <= cap:
            return _DEAD_JSON.encode(_DeadLetterRecord(self.error, source, self.raw))
        return orjson.dumps(self.record(source, cap))

    def record(self, source: dict, cap: int | None = None) -> dict:
        """The dead-letter record; over ``cap`` bytes, ``raw`` keeps the first bytes and ``truncated`` says so.

        >>> d = DeadLetter("invalid JSON", 7, b"x" * 10_000)
        >>> r = d.record({"line": 7}, cap=4096)
        >>> len(base64.b64decode(r["raw"])), r["truncated"]["bytes"], len(orjson.dumps(r)) <= 4096
        (2934, 10000, True)
        """
        raw = self.raw
        out = {"error": self.error, "source": source, "raw": base64.b64encode(raw).decode("ascii")}
        if cap is None or len(out["raw"]) + 6 * len(self.error) + 512 <= cap:  # surely under the cap: no sizing
            return out
        if len(orjson.dumps(out)) <= cap:
            return out
        if len(orjson.dumps({**out, "raw": ""})) > cap // 2:  # an error text that long: cut it too
            out["error"] = self.error[: cap // 8]
        excess = len(orjson.dumps({**out, "raw": ""})) + 128  # the record without raw, and the truncated note
        keep = max(0, (cap - excess) // 4 * 3)
        out["raw"] = base64.b64encode(raw[:keep]).decode("ascii")
        out["truncated"] = {"bytes": len(raw), "kept": keep, "sha256": hashlib.sha256(raw).hexdigest()}
        return out


def shrink_dead_letter(record: bytes, cap: int) -> bytes:
    """A dead-letter record (JSON) cut to ``cap`` bytes, as :meth:`DeadLetter.record` cuts one.

    >>> big = orjson.dumps(DeadLetter("invalid JSON", 0, b"x" * 10_000).record({"line": 0}))
    >>> small = orjson.loads(shrink_dead_letter(big, 4096))
    >>> small["truncated"]["bytes"], small["source"]
    (10000, {'line': 0})
    """
    raw = orjson.loads(record)
    truncated = raw.get("truncated")
    original = base64.b64decode(raw["raw"])
    dead = DeadLetter(raw["error"], 0, original)
    out = dead.record(raw["source"], cap)
    if truncated:  # cut before: keep the first cut's account of the original
        out["truncated"] = {**truncated, "kept": out.get("truncated", truncated)["kept"]}
    return orjson.dumps(out)


def dead_letter_shrinker(dead_letter_topic: str):
    """For :meth:`BatchPublisher.deliver`: a dead letter its topic refused as too large, cut to half its size
    (at most ``SAFE_DEAD_LETTER_BYTES``); None for a record of any other topic.

    >>> shrink = dead_letter_shrinker("dead")
    >>> big = orjson.dumps(DeadLetter("invalid JSON", 0, b"x" * 10_000).record({"line": 0}))
    >>> len(shrink("dead", (None, big))[1]) <= len(big) // 2, shrink("alerts", (None, big))
    (True, None)
    """
    def shrink(topic: str, record: tuple) -> tuple | None:
        if topic != dead_letter_topic:
            return None
        return record[0], shrink_dead_letter(record[1], min(SAFE_DEAD_LETTER_BYTES, len(record[1]) // 2))

    return shrink


@dataclass
class Decoded:
    """Per-model batches (with the input index of each row) and dead letters."""

    batches: list[Batch] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    blank: int = 0
    invalid: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # index -> (column, why) set missing

    @property
    def events(self) -> int:
        return sum(len(r) for r in self.rows)


class Decoder:
    """Turn raw messages (a list, or a :class:`LineBlock` of a file) into :class:`Decoded` batches.

    >>> dec = Decoder(Schema({"amount": "numeric", "country": "categorical"}, "numeric"))
    >>> out = dec.decode([
    ...     b'{"event_id":"a","model":"m","timestamp":"2026-11-01T00:00:00Z","features":{"amount":1.5,"country":"US"},"prediction":0.2}',
    ...     b'{"event_id":"b","model":"m","timestamp":1762000000,"features":{"amount":"x"}}',
    ...     b'not json'])
    >>> out.events, [(d.index, d.error.split(' (')[0]) for d in out.dead]
    (1, [(1, 'features.amount: expected a number, got a string'), (2, 'invalid JSON')])
    >>> out.dead[0].field
    'features.amount'
    """

    def __init__(self, schema: Schema, limits: Limits | None = None) -> None:
        self.schema = schema
        self.limits = limits or Limits()
        self.polars_schema = schema.polars()
        try:  # (a field named with a quote, a backslash or a control character has no typed screen: judged alone)
            self._fits_all: msgspec.json.Decoder | None = msgspec.json.Decoder(_screen_type(schema))
        except ValueError:
            self._fits_all = None
        self.screen_first = False  # the last block needed the screen: screen the next one before parsing it
        self._invalid: dict[int, list[tuple[str, str]]] = {}
        self.repair = False

    def decode(self, lines: Lines, first_index: int = 0, messages: bool = False, repair: bool = False) -> Decoded:
        """Decode ``lines``; indices in the result count from ``first_index``.

        With ``repair`` (monitoring), a feature or output of the wrong type is
        set missing and reported in ``invalid``: the event still counts.
        Without (the guard), such an event is a dead letter naming the field.

        A blank line of a file is skipped and counted (``blank``); with
        ``messages`` (Kafka records, where every message was sent on purpose)
        an empty or blank message is a dead letter.
        """
        out = Decoded()
        self._invalid, self.repair = out.invalid, repair
        keep = self._screen(lines, first_index, out, messages)
        frames: list[tuple[np.ndarray, pl.DataFrame]] = []
        self._parse(lines, keep, frames, out.dead, first_index)
        if not frames:
            out.dead.sort(key=lambda d: d.index)
            return out
        index = np.concatenate([ix for ix, _ in frames])
        frame = pl.concat([f for _, f in frames], how="vertical") if len(frames) > 1 else frames[0][1]
        if len(frames) > 1:
            order = np.argsort(index, kind="stable")
            index, frame = index[order], frame[order]
        self._validate_and_split(frame, index, lines, first_index, out)
        out.dead.sort(key=lambda d: d.index)
        return out

    def _screen(self, lines: Lines, first_index: int, out: Decoded, messages: bool = False) -> np.ndarray:
        """Indices (into ``lines``) worth parsing; blank lines are skipped, oversize ones are dead letters."""
        dead = out.dead
        if isinstance(lines, LineBlock):
            lengths = lines.lengths()
        else:
            lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        blank = lengths == 0
        for i in np.flatnonzero(lengths <= 4):
            blank[i] = not lines[i].strip()
        if messages:
            dead += [DeadLetter.of(None, "empty message", first_index + int(i), lines[i]) for i in np.flatnonzero(blank)]
        else:
            out.blank = int(blank.sum())
        cap = self.limits.max_message_bytes
        keep = np.flatnonzero(~blank & (lengths <= cap))
        for i in np.flatnonzero(lengths > cap):
            dead.append(DeadLetter.of(None, f"message is {lengths[i]} bytes, over the cap of {cap}", first_index + int(i),
                                      lines[i]))
        suspicious = keep[lengths[keep] > 6 * self.limits.max_features]
        if suspicious.size:
            drop = set()
            for i in suspicious:
                try:
                    n = len(orjson.loads(lines[i]).get("features") or {})
                except (orjson.JSONDecodeError, AttributeError, TypeError):
                    continue  # the parser will say what is wrong
                if n > self.limits.max_features:
                    drop.add(int(i))
                    dead.append(DeadLetter.of("features", f"{n} features, over the cap of {self.limits.max_features}",
                                              first_index + int(i), lines[i]))
            if drop:
                keep = np.array([i for i in keep if int(i) not in drop], dtype=np.int64)
        return keep

    def _parse(self, lines, idx: np.ndarray, frames, dead, first_index, screened: bool = False) -> None:
        """Parse ``lines[idx]`` in one call; when the reader refuses, find the bad lines and parse the rest once.

        The bad lines are found by a per-line screen (:meth:`_problem`: one
        JSON parse and a type check each) that flags only what the reader
        refuses on its own, so a line's fate does not depend on its
        neighbours; lines the screen lets through but the reader still
        refuses (rare) are isolated by halving.
        """
        if idx.size == 0:
            return
        if not screened and self.screen_first:  # the last block had bad lines: this one likely has too
            self._screen_then_parse(lines, idx, frames, dead, first_index)
            return
        try:
            if isinstance(lines, LineBlock) and idx.size == len(lines):
                payload = lines.joined()
            else:
                payload = b"\n".join(_pick(lines, idx)) if idx.size > 1 else lines[idx[0]]
            frame = self._read(payload, lines, idx)
            if len(frame) != idx.size:  # a message with a newline inside is not one line of NDJSON
                raise ValueError("a message must be one JSON object on one line")
            frames.append((idx, frame))
            return
        except Exception as exc:  # polars raises several types for bad input
            if idx.size == 1 and screened:
                i = int(idx[0])
                dead.append(DeadLetter.of(*self._reason(lines[i], exc), first_index + i, lines[i]))
                return
        if not screened:
            self._screen_then_parse(lines, idx, frames, dead, first_index)
            return
        half = idx.size // 2
        self._parse(lines, idx[:half], frames, dead, first_index, screened=True)
        self._parse(lines, idx[half:], frames, dead, first_index, screened=True)

    def _screen_then_parse(self, lines, idx: np.ndarray, frames, dead, first_index) -> None:
        """Dead letters for the lines the screen flags, one parse of the rest; remember whether any was bad."""
        picked = _pick(lines, idx)
        verdicts = [self._verdict(line) for line in picked]
        bad = np.fromiter((v[0] is not None for v in verdicts), dtype=bool, count=idx.size)
        fixed_rows, fixed_lines = [], []
        for j in np.flatnonzero(bad).tolist():
            i, line, (problem, raw) = int(idx[j]), picked[j], verdicts[j]
            fixed = self._repair(raw) if self.repair and _of_a_field(problem) else None
            if fixed is None:
                dead.append(DeadLetter.of(*problem, first_index + i, line))
            else:
                fixed_rows.append(i)
                fixed_lines.append(fixed[0])
                self._invalid[first_index + i] = fixed[1]
        self.screen_first = bool(bad.any())
        self._parse(lines, idx[~bad], frames, dead, first_index, screened=True)
        if fixed_rows:  # the events with a field of the wrong type, that field set missing: one parse
            rows = np.asarray(fixed_rows, dtype=np.int64)
            try:
                frames.append((rows, pl.read_ndjson(io.BytesIO(b"\n".join(fixed_lines)), schema=self.polars_schema)))
            except Exception as exc:  # not expected: the screen passed them; say so rather than lose them
                for i in fixed_rows:
                    self._invalid.pop(first_index + i, None)
                    dead.append(DeadLetter.of(None, f"could not decode: {str(exc).splitlines()[0][:200]}",
                                              first_index + i, lines[i]))

    def _repair(self, raw: dict) -> tuple[bytes, list[tuple[str, str]]] | None:
        """The event (parsed as the reader reads it, by :meth:`_verdict`; changed in place) with every feature
        or output of the wrong type set to null, and what was wrong; None when something else is wrong too
        (then it is a dead letter)."""
        wrong = _constants_nulled(raw)
        found = self._judge(raw)
        while found is not None:
            if not _of_a_field(found) or len(wrong) > len(self.schema.columns()):
                return None
            name, why = found
            assert name is not None  # _of_a_field
            if name.startswith("features."):
                raw["features"][name[9:]] = None
                wrong.append((feature_column(name[9:]), why))
            elif name == "prediction":
                raw["prediction"] = None
                wrong.append((name, why))
            else:
                raw["prediction"][name[11:]] = None
                wrong.append((name, why))
            found = self._judge(raw)
        try:
            return msgspec.json.encode(self._within_64_bits(raw)), wrong
        except (TypeError, msgspec.EncodeError, RecursionError):  # (nested too deeply to write back)
            return None

    def _read(self, payload: bytes, lines: Lines, idx: np.ndarray) -> pl.DataFrame:
        """The reader's frame of ``payload`` (``lines[idx]`` joined). It refuses an integer past 64 bits: where
        it refused and there may be one, each such integer is given as :meth:`_within_64_bits` says."""
        try:
            return pl.read_ndjson(io.BytesIO(payload), schema=self.polars_schema)
        except Exception:
            if not _BIG_INT.search(payload):
                raise
        payload = b"\n".join(self._small_ints(line) if _BIG_INT.search(line) else line for line in _pick(lines, idx))
        return pl.read_ndjson(io.BytesIO(payload), schema=self.polars_schema)

    def _small_ints(self, line: bytes) -> bytes:
        """``line`` with every integer past 64 bits as the reader can take it (see :meth:`_within_64_bits`);
        as it is when it is not JSON (the reader says why)."""
        try:
            return msgspec.json.encode(self._within_64_bits(_JSON_ANY.decode(line)))
        except (msgspec.DecodeError, msgspec.EncodeError, RecursionError, TypeError):
            return line

    def _within_64_bits(self, raw: Any) -> Any:
        """An event with each integer past 64 bits (a 128-bit hash, a big count) made a float where the schema
        wants a number (a feature or an output), else its text (an id, a tag, a categorical value)."""
        if not isinstance(raw, dict):
            return raw
        out = {k: _big_as_text(v) for k, v in raw.items()}
        features, prediction = raw.get("features"), raw.get("prediction")
        if isinstance(features, dict):
            out["features"] = {k: _big_as(v, self.schema.features.get(k)) for k, v in features.items()}
        if isinstance(prediction, dict) and isinstance(self.schema.prediction, dict):
            out["prediction"] = {k: _big_as(v, self.schema.prediction.get(k)) for k, v in prediction.items()}
        elif not isinstance(prediction, (dict, list)) and not isinstance(self.schema.prediction, dict):
            out["prediction"] = _big_as(prediction, self.schema.prediction) if "prediction" in raw else None
        if "prediction" not in raw:
            out.pop("prediction", None)
        return out

    def _reason(self, line: bytes, exc: Exception) -> tuple[str | None, str]:
        """(field at fault, why) for a line the fast reader refused."""
        return self._problem(line) or (None, f"could not decode: {str(exc).splitlines()[0][:200]}")

    def _problem(self, line: bytes) -> tuple[str | None, str] | None:
        """(field at fault, why) when this line can only be a dead letter, else None.

        Flags only what the reader (or the row checks after it) refuses on its
        own: invalid JSON, a non-object, a missing or non-scalar ``event_id``,
        ``model`` or ``timestamp``, ``features`` not an object, and a value of
        the wrong type where the schema wants a number or a boolean. Text
        columns take any value as its text, so nothing is flagged there.
        """
        return self._verdict(line)[0]

    def _verdict(self, line: bytes) -> tuple[tuple[str | None, str] | None, Any]:
        """:meth:`_problem`'s verdict, and the event as parsed when a field's value is at fault (else None)."""
        try:  # one typed decode (C) says a line passes every check below; only the others are worded
            if self._fits_all is not None:
                self._fits_all.decode(line)
                return None, None
        except (msgspec.DecodeError, RecursionError):
            pass
        try:
            raw = _JSON_ANY.decode(line)
        except RecursionError:
            return (None, "invalid JSON: nested too deeply"), None
        except msgspec.DecodeError as e:
            if _SURROGATE.search(line):  # the reader takes lone surrogate escapes, msgspec does not: let it judge
                return None, None
            if _CONSTANT.search(line):
                raw = _with_constants(line)  # as Python's json.dumps writes a float NaN: that field's problem
                at = _constant_field(raw) if raw is not None else None
                if at is None:
                    return (None, f"invalid JSON: NaN and Infinity are not JSON numbers ({e})"), None
                return at, raw
            return (None, f"invalid JSON ({e})"), None
        found = self._judge(raw)
        if found is None:
            return None, None
        name = found[0]
        if name is None or ("." not in name and name not in raw):  # not an object, or a top-level key absent:
            return found, None  # the same verdict whichever of duplicate keys is read
        reread = _as_the_reader_reads(line, raw)
        if reread is not raw:
            found = self._judge(reread)
        return found, reread

    def _judge(self, raw) -> tuple[str | None, str] | None:
        """The screen's verdict on a parsed event (see :meth:`_problem`)."""
        if not isinstance(raw, dict):
            return None, f"an event must be a JSON object, got {_name(raw)}"
        for name in ("event_id", "model", "timestamp"):
            value = raw.get(name)
            if value is None:
                return name, "missing required field"
            if isinstance(value, (dict, list)) or (name == "timestamp" and isinstance(value, bool)):
                return name, f"expected {_WANT_TOP[name]}, got {_name(value)}"
        features = raw.get("features")
        if not isinstance(features, dict):
            return "features", ("missing required field (an object)" if features is None
                                else f"expected an object, got {_name(features)}")
        for name, kind in self.schema.features.items():
            value = features.get(name)
            if value is not None and not _fits(value, kind):
                return f"features.{name}", f"expected {_WANT[kind]}, got {_name(value)}"
        pred = raw.get("prediction")
        if isinstance(self.schema.prediction, dict):
            if pred is not None and not isinstance(pred, dict):
                return "prediction", f"expected an object of outputs, got {_name(pred)}"
            for name, kind in self.schema.prediction.items():
                value = (pred or {}).get(name)
                if value is not None and not _fits(value, kind):
                    return f"prediction.{name}", f"expected {_WANT[kind]}, got {_name(value)}"
        elif self.schema.prediction is not None and pred is not None and not _fits(pred, self.schema.prediction):
            return "prediction", f"expected {_WANT[self.schema.prediction]}, got {_name(pred)}"
        tags = raw.get("tags")
        if self.schema.tags and tags is not None and not isinstance(tags, dict):
            return "tags", f"expected an object of strings, got {_name(tags)}"
        return None

    def problem(self, line: bytes) -> tuple[str | None, str] | None:
        """(field at fault, why) when ``line`` can only be a dead letter; None when the batch reader must judge.

        The same verdicts, in the same words, as :meth:`decode` gives; the
        guard asks this first for a single event, since the batch reader's
        fixed cost is about a millisecond.
        """
        found = self._problem(line)
        if found is not None:
            return found
        try:  # the timestamp too, which the batch reader would judge later
            raw = _as_the_reader_reads(line, _JSON_ANY.decode(line))
        except (msgspec.DecodeError, RecursionError):
            return None
        return _judge_time(raw["timestamp"]) if isinstance(raw, dict) else None

    def _validate_and_split(self, frame: pl.DataFrame, index: np.ndarray, lines, first_index, out: Decoded) -> None:
        """One polars ``select`` for all checks and columns, then split by model."""
        table = frame.select(self._expressions())
        problem = table[_PROBLEM].to_numpy().copy()
        times = _seconds(table[_TIME])
        problem[(problem == 0) & np.isnan(times)] = 5
        problem[(problem == 0) & ~in_range(times)] = 7
        for i in np.flatnonzero(problem == 6):  # the reader turns an object or array into its text: look again
            wrong = self._problem(lines[int(index[i])])
            problem[i] = 0 if wrong is None else 6
        bad = problem > 0
        for i in np.flatnonzero(bad):
            j = int(index[i])
            what = _PROBLEMS.get(problem[i]) or self._problem(lines[j])
            out.dead.append(DeadLetter.of(*what, first_index + j, lines[j]))
        if bad.any():
            table, index, times = table.filter(pl.Series(~bad)), index[~bad], times[~bad]
        if len(table) == 0:
            return
        models = table[_MODEL].unique(maintain_order=True)
        bounds = [0, len(table)]
        if len(models) > 1:  # each model's rows, in order, one after the other: one gather of the whole table
            codes = table[_MODEL].cast(pl.Enum(models.to_list())).to_physical().to_numpy()
            order = np.argsort(codes, kind="stable")
            table, index, times = table[order], index[order], times[order]
            bounds = [0] + np.cumsum(np.bincount(codes, minlength=len(models))).tolist()
        columns, segments, names = self._columns(table)
        batch, rows = Batch(names[0], _text(table[_ID]), times, columns, segments), first_index + index
        if len(names) == 1:
            out.batches.append(batch)
            out.rows.append(rows)
            return
        for name, lo, hi in zip(names, bounds, bounds[1:]):
            part = batch.slice(lo, hi)
            out.batches.append(Batch(name, part.event_ids, part.times, part.columns, part.segments))
            out.rows.append(rows[lo:hi])

    def _columns(self, table: pl.DataFrame) -> tuple[dict[str, Column], dict[str, CategoricalArray], list[str]]:
        """Every output as an array, and the models in order of appearance, in two polars queries.

        The first query finds each categorical column's labels (sorted, as
        ``CategoricalArray`` wants); the second casts to codes: through an
        ``Enum`` of those labels when they are few (a hash lookup per value),
        by a dense rank when they are many (an Enum that wide costs more).
        """
        outputs = self._outputs()
        categorical = [_alias(i) for i, (_, kind, _, _) in enumerate(outputs) if kind == "categorical"]
        labels = table.select([pl.col(_MODEL).unique(maintain_order=True).implode()]
                              + [pl.col(c).drop_nulls().unique().sort().implode() for c in categorical]).row(0)
        names, vocabulary = labels[0], dict(zip(categorical, labels[1:]))
        codes_exprs = []
        for i, (_, kind, _, _) in enumerate(outputs):
            name = _alias(i)
            col = pl.col(name)
            if kind == "numeric":
                codes_exprs.append(col.cast(pl.Float64))
            elif kind == "boolean":
                codes_exprs.append(col.cast(pl.Int8).cast(pl.Int64).fill_null(-1))
            elif len(vocabulary[name]) <= ENUM_LABELS:
                codes_exprs.append(col.cast(pl.Enum(vocabulary[name])).to_physical().cast(pl.Int64).fill_null(-1))
            else:
                codes_exprs.append((col.rank("dense").cast(pl.Int64) - 1).fill_null(-1))
        arrays = table.select(codes_exprs)
        columns: dict[str, Column] = {}
        segments: dict[str, CategoricalArray] = {}
        for i, (name, kind, _, tag) in enumerate(outputs):
            values = arrays[_alias(i)].to_numpy()
            if kind == "numeric":
                column: Column = NumericArray(values.astype(np.float64, copy=False))
            elif kind == "boolean":
                column = CategoricalArray(values, ("false", "true"))
            else:
                column = CategoricalArray(values, tuple(vocabulary[_alias(i)]))
            if tag:
                segments[name] = column
            else:
                columns[name] = column
        return columns, segments, names

    def _outputs(self) -> list[tuple[str, str, pl.Expr, bool]]:
        """(column, kind, where the reader finds it, whether it is a tag) of every feature, prediction output
        and tag (a tag's column is its segment's name)."""
        features, outputs = pl.col("features").struct, pl.col("prediction").struct
        outs = [(feature_column(k), v, features.field(k), False) for k, v in self.schema.features.items()]
        pred = self.schema.prediction
        if isinstance(pred, dict):
            outs += [(f"prediction.{k}", v, outputs.field(k), False) for k, v in pred.items()]
        elif pred is not None:
            outs.append(("prediction", pred, pl.col("prediction"), False))
        tags = {t: pl.col("tags").struct.field(t) for t in self.schema.tags}
        if self.schema.version:  # the event's own model_version, else a tag of that name
            tags[VERSION] = pl.coalesce(pl.col(VERSION), tags[VERSION]) if VERSION in tags else pl.col(VERSION)
        return outs + [(t, "categorical", source, True) for t, source in tags.items()]

    def _expressions(self) -> list[pl.Expr]:
        problem = (
            pl.when(pl.col("event_id").is_null()).then(1)
            .when(pl.col("model").is_null()).then(2)
            .when(pl.col("timestamp").is_null()).then(3)
            .when(pl.col("features").is_null()).then(4)
            .when(pl.col("event_id").str.contains(r"^[\[{]") | pl.col("model").str.contains(r"^[\[{]")).then(6)
            .otherwise(0).cast(pl.Int8)
        )
        exprs = [pl.col("event_id").alias(_ID), pl.col("model").alias(_MODEL), pl.col("timestamp").alias(_TIME),
                 problem.alias(_PROBLEM)]
        return exprs + [source.alias(_alias(i)) for i, (_, _, source, _) in enumerate(self._outputs())]


# the columns of the reader's one select are named here, never by a field's own name (a feature may be named
# event_id, prediction or tags.region)
_ID, _MODEL, _TIME, _PROBLEM = "\x1fid", "\x1fmodel", "\x1ftime", "\x1fproblem"


def _alias(i: int) -> str:
    return f"\x1f{i}"


def is_output(column: str) -> bool:
    """A column of the prediction: ``prediction`` or ``prediction.<output>``."""
    return column == "prediction" or column.startswith("prediction.")


def feature_column(name: str) -> str:
    """The column a feature is watched as: its own name, or ``features.<name>`` where that name is one of the
    prediction's columns (a stacked model's feature named ``prediction``), or would be read as such a column
    (``features.prediction`` itself: no two features share a column).

    >>> feature_column("amount"), feature_column("prediction"), feature_column("features.prediction")
    ('amount', 'features.prediction', 'features.features.prediction')
    >>> [feature_of(feature_column(n)) for n in ("prediction_score", "features.x", "features.prediction")]
    ['prediction_score', 'features.x', 'features.prediction']
    """
    return f"features.{name}" if _renamed(name) else name


def feature_of(column: str) -> str:
    """The feature a column of features watches (:func:`feature_column`'s inverse)."""
    rest = column[len("features."):]
    return rest if column.startswith("features.") and _renamed(rest) else column


def _renamed(name: str) -> bool:
    return is_output(name) or (name.startswith("features.") and _renamed(name[len("features."):]))


_RFC3339 = "%Y-%m-%dT%H:%M:%S%.f%#z"


def _text(strings: pl.Series) -> TextArray:
    """A string column as one UTF-8 buffer and its offsets (nulls as empty strings)."""
    strings = strings.fill_null("")
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum(strings.str.len_bytes().to_numpy(), out=offsets[1:])
    data = strings.str.join("").item().encode("utf-8") if len(strings) else b""
    return TextArray(data, offsets)


def _seconds(ts: pl.Series) -> np.ndarray:
    """Epoch seconds of RFC 3339 text or of epoch seconds (sent as a number); NaN if neither.

    The compiled parser takes the common forms; the rows it cannot read go to
    a float cast, then to polars' general parser.
    """
    out = rfc3339_seconds(_text(ts))
    left = np.flatnonzero(np.isnan(out))
    if left.size:
        rest = ts.gather(left)
        numeric = rest.cast(pl.Float64, strict=False)
        parsed = rest.str.replace(" ", "T", literal=True).str.to_datetime(
            _RFC3339, strict=False, time_zone="UTC", time_unit="us")
        number = epoch_seconds(numeric.fill_null(np.nan).to_numpy())
        text = (parsed.dt.epoch("us") / 1e6).fill_null(np.nan).to_numpy()
        out[left] = np.where(np.isfinite(number), number, text)
    return out


_PROBLEMS = {
    1: ("event_id", "missing required field"),
    2: ("model", "missing required field"),
    3: ("timestamp", "missing required field"),
    4: ("features", "missing required field (an object)"),
    5: ("timestamp", "expected an RFC 3339 string or an epoch number (s, ms, us or ns)"),
    7: ("timestamp", "out of range: event times must fall in 1970-01-01 .. 2200-01-01"),
}

def _as_the_reader_reads(line: bytes, raw):
    """The event as the batch reader reads it: with duplicate keys the reader keeps the first of each,
    msgspec (``raw``) the last."""
    if key_marks(line) > count_keys(raw):
        return json.loads(line, object_pairs_hook=_first_wins)
    return raw


def key_marks(line: bytes) -> int:
    """At least the number of keys in a JSON line: a quote then a colon, maybe with blanks between.

    Compact JSON (no blank after a quote) is counted by ``bytes.count``; the regex only runs when a
    quote is followed by a blank somewhere.

    >>> key_marks(b'{"a":1,"b":"x:y"}'), key_marks(b'{"a" :1, "b"\t: 2}')
    (2, 2)
    """
    if b'" ' in line or b'"\t' in line or b'"\n' in line or b'"\r' in line:
        return len(KEY_MARK.findall(line))
    return line.count(b'":')


def _judge_time(value) -> tuple[str, str] | None:
    """The timestamp's verdict when it is sure (a number, or RFC 3339 text, out of range; text with no digit)."""
    if isinstance(value, str):
        seconds = rfc3339_one(value)
        if seconds != seconds:  # not the common form: a number as text, or for polars' general parser
            try:
                seconds = from_epoch(float(value))
            except (ValueError, OverflowError):
                return _PROBLEMS[5] if not any(c.isdigit() for c in value) else None
            if seconds != seconds or abs(seconds) == float("inf"):
                return None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = from_epoch(float(value))
        except OverflowError:  # an integer past any float: the batch reader words it
            return None
    else:
        return None
    return None if in_range(seconds) else _PROBLEMS[7]


_WANT = {"numeric": "a number", "categorical": "a string", "boolean": "a boolean"}
_WANT_TOP = {"event_id": "a string", "model": "a string", "timestamp": "an RFC 3339 string or an epoch number"}
_JSON_ANY = msgspec.json.Decoder()
_CONSTANT = re.compile(rb"[:\[,]\s*-?(NaN|Infinity)\b")  # a bare NaN or Infinity where a value goes
_BIG_INT = re.compile(rb"[:\[,]\s*-?\d{20,}")  # an integer that may be past 64 bits (or text that looks so)


def _big_as(value: Any, kind: str | None) -> Any:
    """An integer past 64 bits as a float for a numeric column (missing where even a float cannot hold it)."""
    if type(value) is int and not -(2**63) <= value < 2**64 and kind == "numeric":
        try:
            return float(value)
        except OverflowError:
            return None
    return _big_as_text(value)


def _big_as_text(value: Any) -> Any:
    """Every integer past 64 bits in ``value`` as its text."""
    if type(value) is int:
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {k: _big_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_big_as_text(v) for v in value]
    return value


class _Stamped(msgspec.Struct):
    timestamp: Any = None
    model: Any = None


_STAMP = msgspec.json.Decoder(_Stamped)  # reads the timestamp and model alone, skipping the rest of the event
_STAMPS = msgspec.json.Decoder(list[_Stamped])
_NONE = _Stamped()


def _stamp(line: bytes) -> _Stamped:
    try:
        return _STAMP.decode(line)
    except (msgspec.DecodeError, RecursionError):  # nested too deeply: no time
        pass
    raw = _with_constants(line) if _CONSTANT.search(line) else None  # a bare NaN in a field: the event is read
    if isinstance(raw, dict):
        scalar = (str, int, float)
        model, ts = raw.get("model"), raw.get("timestamp")
        return _Stamped(ts if isinstance(ts, scalar) and not isinstance(ts, bool) else None,
                        model if isinstance(model, scalar) and not isinstance(model, bool) else None)
    return _NONE


def _stamped(lines: Lines) -> list[_Stamped]:
    try:  # every message at once; one that is not an object of valid JSON sends it line by line
        stamps = _STAMPS.decode(b"[" + b",".join(lines) + b"]") if len(lines) else []
        if len(stamps) != len(lines):  # a message holding several values, e.g. "1,2"
            raise msgspec.DecodeError
    except (msgspec.DecodeError, RecursionError):
        stamps = [_stamp(line) for line in lines]
    return stamps


def event_times(lines: Lines) -> np.ndarray:
    """Each message's event time in epoch seconds, read as the decoder reads it (RFC 3339, or an epoch number
    of s, ms, us or ns by magnitude); NaN when it has none that is readable and in range.

    >>> event_times([b'{"timestamp": "2026-11-01T00:00:00Z"}', b'{"timestamp": 1793491200000}', b"[1]", b""]).tolist()
    [1793491200.0, 1793491200.0, nan, nan]
    """
    return _times([s.timestamp for s in _stamped(lines)])


def event_time(line: bytes) -> float:
    """:func:`event_times` of one message, without a batch's fixed costs (a few microseconds).

    >>> event_time(b'{"timestamp": "2026-11-01T00:00:00Z"}'), event_time(b'{"timestamp": 1793491200000}')
    (1793491200.0, 1793491200.0)
    """
    ts = _stamp(line).timestamp
    if isinstance(ts, str):
        if not _RFC3339_SHAPE.match(ts):  # another form: as the batch reader reads it
            return float(event_times([line])[0])
        try:  # (not the compiled parser: its first call in a thread costs more than this whole function)
            seconds = datetime.fromisoformat(ts).timestamp()
        except (ValueError, OverflowError, OSError):
            return float(event_times([line])[0])
    elif isinstance(ts, (int, float)) and not isinstance(ts, bool):
        seconds = from_epoch(_as_float(ts))
    else:
        return float("nan")
    return seconds if EARLIEST <= seconds < LATEST else float("nan")


_RFC3339_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


def _as_float(value: int | float) -> float:
    """A JSON number as a float; NaN for an integer too large for one (it is no time)."""
    try:
        return float(value)
    except OverflowError:
        return float("nan")


def models_and_times(lines: Lines) -> tuple[list[Any], np.ndarray]:
    """Each message's ``model`` as it is (None when missing or unreadable) and its :func:`event_times`.

    >>> models, times = models_and_times([b'{"model": "a", "timestamp": 1793491200}', b"oops"])
    >>> models, times.tolist()
    (['a', None], [1793491200.0, nan])
    """
    stamps = _stamped(lines)
    return [s.model for s in stamps], _times([s.timestamp for s in stamps])


def _times(stamps: list[Any]) -> np.ndarray:
    kinds = set(map(type, stamps))
    if kinds == {str}:  # the usual streams: one kind of timestamp throughout
        out = _text_times(stamps)
    elif kinds <= {int, float}:
        out = epoch_seconds(np.fromiter(map(_as_float, stamps), dtype=np.float64, count=len(stamps)))
    else:
        numbers = np.full(len(stamps), np.nan)
        texts: list[str] = []
        at: list[int] = []
        for i, ts in enumerate(stamps):
            if isinstance(ts, str):
                texts.append(ts)
                at.append(i)
            elif isinstance(ts, (int, float)) and not isinstance(ts, bool):
                numbers[i] = _as_float(ts)
        out = epoch_seconds(numbers)
        if texts:
            out[at] = _text_times(texts)
    out[~in_range(out)] = np.nan
    return out


def _text_times(texts: list[str]) -> np.ndarray:
    """The common forms by the compiled parser (without polars' fixed costs); the others as the batch reader
    reads them."""
    seconds = rfc3339_seconds(TextArray.from_list(texts))
    left = np.flatnonzero(np.isnan(seconds))
    if left.size:
        seconds[left] = _seconds(pl.Series([texts[i] for i in left.tolist()], dtype=pl.String))
    return seconds


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
KEY_MARK = re.compile(rb'"\s*:')  # at least one per key (more when a string holds one): a cheap bound on the keys


def count_keys(value) -> int:
    """Keys in every object of a parsed JSON value."""
    if isinstance(value, dict):
        return len(value) + sum(count_keys(v) for v in value.values() if isinstance(v, (dict, list)))
    if isinstance(value, list):
        return sum(count_keys(v) for v in value if isinstance(v, (dict, list)))
    return 0


def _first_wins(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out  # takes integers of any size, as the reader does (orjson stops at 64 bits)


def _name(value) -> str:
    if isinstance(value, _Constant):
        return value.text
    return {bool: "a boolean", str: "a string", dict: "an object", list: "an array",
            type(None): "null"}.get(type(value), "a number")


class _Constant:
    """A bare ``NaN``, ``Infinity`` or ``-Infinity`` in a line (not JSON: Python's ``json.dumps`` writes them)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _with_constants(line: bytes) -> Any:
    """The line parsed with its bare constants as :class:`_Constant`; None when it is not JSON even so (a
    number too large for a double stays what makes the line a dead letter)."""
    try:
        return json.loads(line, parse_constant=_Constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a double")
    return value


def _fields(raw: dict) -> list[tuple[str, dict, str]]:
    """(name, the object holding it, its key) of each feature and prediction output of a parsed event."""
    out = []
    if isinstance(raw.get("features"), dict):
        out += [(f"features.{k}", raw["features"], k) for k in raw["features"]]
    prediction = raw.get("prediction")
    if isinstance(prediction, dict):
        out += [(f"prediction.{k}", prediction, k) for k in prediction]
    elif "prediction" in raw:
        out.append(("prediction", raw, "prediction"))
    return out


def _constant_field(raw: Any) -> tuple[str, str] | None:
    """The first feature or output that is a bare constant, when every constant of ``raw`` is one (a constant
    elsewhere, in a time or an id, leaves the event unreadable: None)."""
    if not isinstance(raw, dict):
        return None
    held = [(name, holder[key]) for name, holder, key in _fields(raw) if isinstance(holder[key], _Constant)]
    if not held or len(held) != _count_constants(raw):
        return None
    return held[0][0], _not_a_number(held[0][1])


def _count_constants(value: Any) -> int:
    """The bare constants anywhere in ``value`` (a loop, not a recursion: any depth json.loads takes)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Constant):
            count += 1
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _constants_nulled(raw: dict) -> list[tuple[str, str]]:
    """Each feature or output of ``raw`` that is a bare constant set to null; (column, what was wrong)."""
    wrong = []
    for name, holder, key in _fields(raw):
        if isinstance(holder[key], _Constant):
            column = feature_column(name[len("features."):]) if name.startswith("features.") else name
            wrong.append((column, _not_a_number(holder[key])))
            holder[key] = None
    return wrong


def _not_a_number(constant: _Constant) -> str:
    return f"expected a number, got {constant.text}"


def _of_a_field(problem: tuple[str | None, str]) -> bool:
    """A feature or an output of the wrong type: the value is wrong, not the event."""
    name, why = problem
    return name is not None and name.startswith(("features.", "prediction")) and why.startswith("expected ")


def _pick(lines: Lines, idx: np.ndarray) -> list[bytes]:
    return lines.pick(idx) if isinstance(lines, LineBlock) else [lines[i] for i in idx.tolist()]


_FITS = {"numeric": Union[float, None], "boolean": Union[bool, None], "categorical": Any}


def _screen_type(schema: Schema) -> type:
    """A msgspec type that decodes exactly the lines :meth:`Decoder._judge` passes (first-wins aside)."""

    def struct(name: str, kinds: dict[str, Kind]) -> type:
        fields = [(f"f{i}", _FITS[kind], None) for i, kind in enumerate(kinds.values())]
        return msgspec.defstruct(name, fields, rename={f"f{i}": key for i, key in enumerate(kinds)})

    scalar = Union[str, int, float, bool]
    prediction: Any = Any
    if isinstance(schema.prediction, dict):
        prediction = Union[struct("Outputs", schema.prediction), None]
    elif schema.prediction is not None:
        prediction = _FITS[schema.prediction]
    return msgspec.defstruct("Screened", [
        ("event_id", scalar), ("model", scalar), ("timestamp", Union[str, int, float]),
        ("features", struct("Features", schema.features)), ("prediction", prediction, None),
        ("tags", Union[dict, None] if schema.tags else Any, None)])


def _fits(value, kind: str) -> bool:
    """Whether the reader takes ``value`` for a column of ``kind`` (text takes anything, as its text)."""
    if isinstance(value, _Constant):
        return False
    if kind == "numeric":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return True


def infer_schema(lines: list[bytes], config: MonitorConfig | None = None, tags: tuple[str, ...] = (),
                 model: str | None = None) -> Schema:
    """Kinds of features and prediction, from sample lines plus the config.

    Columns the config declares take its type; the others take the JSON type
    seen in the sample (numbers are numeric, strings categorical, booleans
    boolean; a column seen with mixed types is categorical). ``model``: the
    sample is that model's, and only its config counts; where its config names
    outputs (``prediction.<x>``) and no scalar prediction, the prediction is
    those outputs whatever the sample shows (a scalar is then a wrong value).

    >>> from inferwatch.detectors.config import MonitorConfig
    >>> cfg = MonitorConfig.model_validate({"models": {"m": {"rules": [
    ...     {"kind": "range", "field": "prediction.fraud", "min": 0, "max": 1, "action": "block"}]}}})
    >>> infer_schema([b'{"features": {"x": 1}, "prediction": 0.5}'], cfg, model="m").prediction
    {'fraud': 'numeric'}
    """
    features: dict[str, set[type]] = defaultdict(set)  # the JSON types seen; kinds are settled at the end
    prediction: dict[str, set[type]] | set[type] | None = None
    for raw in _objects(lines):
        if not isinstance(raw.get("features"), dict):
            continue
        for k, v in raw["features"].items():
            features[k].add(type(v))
        pred = raw.get("prediction")
        if isinstance(pred, dict):
            prediction = prediction if isinstance(prediction, dict) else defaultdict(set)
            for k, v in pred.items():
                prediction[k].add(type(v))
        elif pred is not None and not isinstance(pred, list) and not isinstance(prediction, dict):
            prediction = (prediction or set()) | {type(pred)}
    declared = declared_kinds(config, model)
    ruled = rule_fields(config, model)
    kinds = {k: declared.get(feature_column(k)) or _settle(v) for k, v in sorted(features.items())}
    for name, kind in [*declared.items(), *ruled.items()]:  # a rule's field the sample never showed has a column
        if not is_output(name):
            kinds.setdefault(feature_of(name), kind)
    kinds = {k: v for k, v in kinds.items() if v is not None}
    named = {name[len("prediction."):]: kind for name, kind in {**ruled, **declared}.items()
             if name.startswith("prediction.")}
    scalar = declared.get("prediction") or ruled.get("prediction")
    if isinstance(prediction, dict):
        pred_kind: Union[Kind, dict[str, Kind], None] = {
            k: declared.get(f"prediction.{k}") or _settle(v) for k, v in sorted(prediction.items())}
        pred_kind = {k: v for k, v in {**named, **pred_kind}.items() if v is not None}
    elif named and not scalar and (model is not None or not prediction):
        pred_kind = dict(sorted(named.items()))
    elif prediction:
        pred_kind = declared.get("prediction") or _settle(prediction)
    else:
        pred_kind = scalar
    return Schema(kinds, pred_kind, tuple(tags), version=True)


def _objects(lines: list[bytes]):
    """The sample lines that are JSON objects, parsed (the others are the decoder's to judge)."""
    for line in lines:
        try:
            raw = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(raw, dict):
            yield raw


def unwatched_fields(lines: list[bytes]) -> dict[str, dict[str, str]]:
    """Per model, the features (and prediction outputs) whose values are only objects or arrays in
    ``lines``: inferwatch watches numbers, strings and booleans, and says which fields it leaves alone.

    >>> unwatched_fields([b'{"model": "m", "features": {"x": 1, "emb": [0.1, 0.2], "meta": {"a": 1}}}'])
    {'m': {'emb': 'array', 'meta': 'object'}}
    >>> unwatched_fields([b'{"model": "m", "features": {"prediction": [0.1, 0.9]}, "prediction": 0.9}'])
    {'m': {'features.prediction': 'array'}}
    """
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for raw in _objects(lines):
        if not isinstance(raw.get("model"), str):
            continue
        fields = ({feature_column(k): v for k, v in raw["features"].items()} if isinstance(raw.get("features"), dict)
                  else {})
        if isinstance(raw.get("prediction"), dict):
            fields.update({f"prediction.{k}": v for k, v in raw["prediction"].items()})
            seen[raw["model"]]["prediction"].add("value")  # its outputs are watched: not the prediction's odd event
        elif "prediction" in raw:
            fields["prediction"] = raw["prediction"]
        for key, value in fields.items():
            if value is not None:
                seen[raw["model"]][key].add("object" if isinstance(value, dict) else
                                            "array" if isinstance(value, list) else "value")
    return {model: {k: "/".join(sorted(v)) for k, v in sorted(fields.items()) if "value" not in v}
            for model, fields in sorted(seen.items()) if any("value" not in v for v in fields.values())}


def fits(schema: Schema, stream: Schema) -> bool:
    """Whether events of ``schema`` decode under ``stream`` without losing a column or a value.

    >>> a = Schema({"x": "numeric"}, "numeric")
    >>> fits(a, Schema({"x": "numeric", "y": "categorical"}, "numeric")), fits(a, Schema({"x": "categorical"}, "numeric"))
    (True, False)
    >>> fits(Schema({"x": "numeric"}, {"score": "numeric"}), Schema({"x": "numeric"}, "numeric"))
    False
    """
    if any(stream.features.get(name) != kind for name, kind in schema.features.items()):
        return False
    mine, theirs = schema.prediction, stream.prediction
    if mine is None:
        return True
    if isinstance(mine, dict):
        return isinstance(theirs, dict) and all(theirs.get(k) == v for k, v in mine.items())
    return mine == theirs


def declared_kinds(config: MonitorConfig | None, model: str | None = None) -> dict[str, str]:
    """The kind every column of every model (or of ``model`` only) declares in ``columns`` (features,
    ``prediction``, ``prediction.<x>``)."""
    declared: dict[str, str] = {}
    if config is not None:
        for mc in _configs(config, model):
            for name, cc in mc.columns.items():
                if cc.type:
                    declared[name] = cc.type
    return declared


def rule_fields(config: MonitorConfig | None, model: str | None = None) -> dict[str, str]:
    """The kind each rule's field must have (every model's rules, or ``model``'s), for fields no column
    declares: a range is numeric, an allowed list of numbers numeric, anything else text (the decoder takes
    any value as text)."""
    out: dict[str, str] = {}
    if config is None:
        return out
    for mc in _configs(config, model):
        for rule in mc.rules:
            if rule.field is None or rule.field in mc.columns:
                continue
            numbers = rule.values is not None and all(not isinstance(v, str) for v in rule.values)
            out.setdefault(rule.field, "numeric" if rule.kind == "range" or (rule.kind == "allowed" and numbers)
                           else "categorical")
    return out


UNLISTED = "\x00unlisted"  # a model name no config lists: its config is ``default``'s


def _configs(config: MonitorConfig, model: str | None) -> list:
    """The model configs to read: ``model``'s (``UNLISTED``: the default's), or every one when None."""
    return [config.for_model(model)] if model is not None else [*config.models.values(), config.default]


_KIND_OF_TYPE = {bool: "boolean", int: "numeric", float: "numeric", str: "categorical"}


def _settle(types: set[type]) -> str | None:
    """The kind of a column seen with these JSON types: null, objects and arrays say nothing; mixed is categorical."""
    kinds = {_KIND_OF_TYPE[t] for t in types if t in _KIND_OF_TYPE}
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "categorical"
