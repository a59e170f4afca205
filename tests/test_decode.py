"""Decoder: columns out, every bad line a dead letter with its reason and bytes."""

import base64
import io
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.detectors.config import Limits
from inferwatch.detectors.types import CategoricalArray, NumericArray
from inferwatch.streams.decode import DeadLetter, Decoder, Schema, infer_schema, models_and_times
from inferwatch.streams.lines import LineBlock

SCHEMA = Schema({"amount": "numeric", "country": "categorical", "flag": "boolean"}, "numeric")


def ev(i, **over):
    e = {"event_id": f"e{i}", "model": "m", "timestamp": "2026-11-01T00:00:00.250Z",
         "features": {"amount": 1.5 * i, "country": "US", "flag": True}, "prediction": 0.5}
    e.update(over)
    return orjson.dumps(e)


def test_columns_and_types():
    out = Decoder(SCHEMA).decode([ev(1), ev(2, features={"amount": None, "country": "DE"}), ev(3, timestamp=1762000000.5)])
    (batch,) = out.batches
    assert isinstance(batch.columns["amount"], NumericArray)
    np.testing.assert_array_equal(batch.columns["amount"].values, [1.5, np.nan, 4.5])
    country = batch.columns["country"]
    assert isinstance(country, CategoricalArray)
    assert [country.categories[c] for c in country.codes] == ["US", "DE", "US"]
    assert batch.columns["flag"].codes.tolist() == [1, -1, 1]
    assert batch.times[0] == pytest.approx(1793491200.25)
    assert batch.times[2] == 1762000000.5
    assert out.rows[0].tolist() == [0, 1, 2]


BAD = {  # the line, the field at fault (None: the line as a whole)
    "not json": (b"{oops", None),
    "nan": (b'{"event_id":"a","model":"m","timestamp":"2026-11-01T00:00:00Z","features":{"amount":NaN}}',
            "features.amount"),
    "nan time": (b'{"event_id":"a","model":"m","timestamp":NaN,"features":{"amount":1}}', None),
    "huge": (b'{"event_id":"a","model":"m","timestamp":"2026-11-01T00:00:00Z","features":{"amount":1e999}}', None),
    "no model": (ev(1).replace(b'"model":"m",', b""), "model"),
    "features list": (ev(1, features=[1, 2]), "features"),
    "amount string": (ev(1, features={"amount": "x"}), "features.amount"),
    "bad time": (ev(1, timestamp="yesterday"), "timestamp"),
    "array": (b"[1,2]", None),
    "pred object": (ev(1, prediction={"a": 1}), "prediction"),
    "id object": (ev(1, event_id={"a": 1}), "event_id"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_lines_become_dead_letters_with_reason_and_bytes(name):
    raw, field = BAD[name]
    lines = [ev(0), raw, ev(2)]
    out = Decoder(SCHEMA).decode(lines, first_index=100)
    assert out.events == 2
    (dead,) = out.dead
    assert dead.index == 101 and dead.field == field and dead.error
    assert field is None or dead.error.startswith(f"{field}: ")
    record = dead.record({"line": dead.index})
    assert base64.b64decode(record["raw"]) == raw


def test_a_bare_nan_in_a_feature_is_that_feature_s_problem_not_the_event_s():
    """Python's ``json.dumps`` writes a float NaN as a bare ``NaN`` (not JSON): the event still counts, the
    value is missing and named, every other column is kept."""
    nan = b'{"event_id":"a","model":"m","timestamp":"2026-11-01T00:00:00Z","features":{"amount":NaN,"country":"DE"}}'
    inf = b'{"event_id":"b","model":"m","timestamp":"2026-11-01T00:00:01Z","features":{"amount":-Infinity},"prediction":Infinity}'
    out = Decoder(SCHEMA).decode([ev(1), nan, inf], repair=True)
    assert out.events == 3 and not out.dead
    (batch,) = out.batches
    assert np.isnan(batch.columns["amount"].values[1:]).all() and batch.columns["amount"].values[0] == 1.5
    assert batch.columns["country"].categories[batch.columns["country"].codes[1]] == "DE"
    assert out.invalid == {1: [("amount", "expected a number, got NaN")],
                           2: [("amount", "expected a number, got -Infinity"),
                               ("prediction", "expected a number, got Infinity")]}


def test_a_bare_nan_beside_deep_nesting_or_a_huge_number_is_a_dead_letter_not_a_crash():
    """The bare-constant path must not raise on what json.loads takes (deep arrays) or let 1e999 through; the
    route stage reads the model and time of an event it repairs."""
    deep = b"[" * 500 + b"1" + b"]" * 500
    head = b'{"event_id":"a","model":"m","timestamp":"2026-11-01T00:00:00Z","features":{"amount":NaN'
    lines = [head + b',"e":' + deep + b"}}", head + b',"x":1e999}}', head + b"}}", b"NaN", b"[NaN]"]
    decoder = Decoder(SCHEMA)
    out = decoder.decode(lines, repair=True)
    assert out.events + len(out.dead) == len(lines) and out.events >= 1
    assert [d.index for d in out.dead if d.field is None] == [1, 3, 4]
    assert all(decoder.problem(line) is not None for line in lines[1:2] + lines[3:])
    models, times = models_and_times([lines[2]])
    assert models == ["m"] and times.tolist() == [1793491200.0]


def test_a_time_without_an_offset_is_read_as_utc():
    """``datetime.isoformat()`` of a naive datetime, or a database export: the time in UTC, not a lost event."""
    out = Decoder(SCHEMA).decode([ev(0, timestamp="2026-11-01T00:00:00.250"), ev(1, timestamp="2026-11-01 00:00:01")])
    assert out.events == 2 and not out.dead
    assert out.batches[0].times.tolist() == [1793491200.25, 1793491201.0]


def test_tags_must_be_an_object_when_they_are_read():
    """A list of tags is a dead letter; a number as a tag's value is its text (the decoder's one lenience)."""
    schema = Schema(SCHEMA.features, SCHEMA.prediction, ("region",))
    out = Decoder(schema).decode([ev(0, tags={"region": "eu"}), ev(1, tags=["eu"]), ev(2, tags={"region": 3})])
    assert [(d.index, d.field) for d in out.dead] == [(1, "tags")]
    assert out.batches[0].segments["region"].categories == ("3", "eu")


def test_oversize_and_too_many_features():
    limits = Limits(max_message_bytes=4000, max_features=50)
    wide = ev(1, features={f"f{i}": i for i in range(200)})
    big = ev(2, features={"amount": 1, "country": "x" * 5000})
    out = Decoder(SCHEMA, limits).decode([ev(0), wide, big])
    assert out.events == 1
    assert [(d.index, d.field, d.error) for d in out.dead] == [
        (1, "features", "features: 200 features, over the cap of 50"),
        (2, None, f"message is {len(big)} bytes, over the cap of 4000"),
    ]


def test_models_are_split_in_order():
    out = Decoder(SCHEMA).decode([ev(0, model="a"), ev(1, model="b"), ev(2, model="a")])
    assert [b.model for b in out.batches] == ["a", "b"]
    assert [r.tolist() for r in out.rows] == [[0, 2], [1]]


def test_a_line_fate_does_not_depend_on_its_batch():
    lines = [ev(i) for i in range(50)] + [b"garbage"] + [ev(i, features={"amount": "s"}) for i in range(3)]
    whole = Decoder(SCHEMA).decode(lines)
    parts = [Decoder(SCHEMA).decode(lines[i:i + 7], i) for i in range(0, len(lines), 7)]
    assert [(d.index, d.error) for d in whole.dead] == [(d.index, d.error) for p in parts for d in p.dead]


def test_infer_schema_kinds():
    s = infer_schema([ev(1), ev(2, features={"amount": 2, "country": 3, "flag": False}, prediction={"p": 0.1, "c": "x"})])
    assert s.features == {"amount": "numeric", "country": "categorical", "flag": "boolean"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=10),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                              max_leaves=20).map(orjson.dumps)))
def test_arbitrary_input_never_crashes_and_is_accounted_for(raw):
    """Every line is an event, a dead letter or blank: nothing is lost."""
    out = Decoder(SCHEMA).decode([ev(0), raw, ev(2)])
    assert out.events + len(out.dead) + out.blank == 3


def test_a_non_ascii_timestamp_is_a_dead_letter_not_a_crash():
    out = Decoder(SCHEMA).decode([ev(1), ev(2, timestamp="2026-11-01T00:00:00Z\u00e9"), ev(3, timestamp="\x80")])
    assert out.events == 1
    assert [(d.index, d.error.split(":")[0]) for d in out.dead] == [(1, "timestamp"), (2, "timestamp")]


def test_wide_and_narrow_vocabularies_give_the_same_codes(monkeypatch):
    """Few labels are coded through an Enum, many by a dense rank: same codes, same sorted labels, ids intact."""
    countries = ["US", None, "DE", "FR", "DE", "Ünïcode", "US"]
    lines = [ev(i, features={"amount": 1.0, "country": c, "flag": False}) for i, c in enumerate(countries)]
    narrow = Decoder(SCHEMA).decode(lines).batches[0]
    monkeypatch.setattr("inferwatch.streams.decode.ENUM_LABELS", 1)
    wide = Decoder(SCHEMA).decode(lines).batches[0]
    for batch in (narrow, wide):
        col = batch.columns["country"]
        assert col.categories == ("DE", "FR", "US", "Ünïcode")
        assert [col.categories[c] if c >= 0 else None for c in col.codes] == countries
        assert batch.event_ids.tolist() == [f"e{i}" for i in range(len(countries))]


def test_timestamp_with_trailing_text_is_a_dead_letter():
    out = Decoder(SCHEMA).decode([ev(0, timestamp="2026-11-01T00:00:00Zjunk"),
                                  ev(1, timestamp="2026-11-01T00:00:00.123456789012345678901234567890Z")])
    assert [d.index for d in out.dead] == [0]
    assert out.batches[0].times[0] == pytest.approx(1793491200.123456789)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"", b" ", b"{}", b'{"a":1}\r', b"x" * 37]), max_size=40),
       st.booleans(), st.integers(1, 9), st.integers(1, 64), st.booleans())
def test_read_chunks_cuts_a_file_into_its_lines(tmp_path_factory, lines, trailing_newline, per_chunk, block, mapped):
    """Whatever the block and chunk sizes, mapped or read as a stream: the file's lines, in order, numbered from 0."""
    import io

    import inferwatch.streams.replay as replay

    content = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    path = tmp_path_factory.mktemp("chunks") / "events.jsonl"
    path.write_bytes(content)
    expected = content.split(b"\n")
    if content.endswith(b"\n") or not content:
        expected.pop()
    saved, replay.READ_BLOCK = replay.READ_BLOCK, block
    try:
        if mapped:
            chunks = list(replay.read_chunks(path, per_chunk))
        else:
            chunks = list(replay._read_chunks(io.BytesIO(content), per_chunk))
    finally:
        replay.READ_BLOCK = saved
    assert [line for _, chunk, _ in chunks for line in chunk] == expected
    assert [first for first, _, _ in chunks] == list(range(0, len(expected), per_chunk))
    assert all(len(chunk) == per_chunk for _, chunk, _ in chunks[:-1])
    assert [done for _, _, done in chunks][-1:] == ([len(content)] if expected else [])
    assert [chunk.joined() for _, chunk, _ in chunks] == [b"\n".join(expected[i:i + per_chunk])
                                                          for i in range(0, len(expected), per_chunk)]


def test_a_block_of_lines_decodes_like_the_list_of_its_lines():
    for lines in ([ev(i) for i in range(20)],
                  [ev(0), b"", b"garbage", ev(3, features={"amount": "s"}), b"  ", ev(5)]):
        as_list = Decoder(SCHEMA).decode(lines, 10)
        as_block = Decoder(SCHEMA).decode(LineBlock.split(b"\n".join(lines)), 10)
        assert [(d.index, d.error, d.raw) for d in as_block.dead] == [(d.index, d.error, d.raw) for d in as_list.dead]
        assert as_block.blank == as_list.blank
        assert [r.tolist() for r in as_block.rows] == [r.tolist() for r in as_list.rows]
        assert as_block.batches[0].event_ids.tolist() == as_list.batches[0].event_ids.tolist()


def test_a_message_with_a_newline_inside_is_a_dead_letter_not_two_events():
    two = ev(1) + b"\n" + ev(2)
    out = Decoder(SCHEMA).decode([ev(0), two, ev(3)])
    assert [d.index for d in out.dead] == [1]
    assert out.rows[0].tolist() == [0, 2]


def test_epoch_numbers_in_s_ms_us_ns_are_one_time_and_out_of_range_is_a_dead_letter():
    """1793491200 s = ms = us = ns by magnitude (2026-11-01); year 58,803 or 1960 is a dead letter naming timestamp."""
    second = 1_793_491_200
    lines = [ev(i, timestamp=t) for i, t in enumerate(
        [second, second * 1000, second * 10**6, second * 10**9, str(second * 1000), float(second) * 1000 + 0.5])]
    lines += [ev(9, timestamp="58803-01-01T00:00:00Z"), ev(10, timestamp=-3e8), ev(11, timestamp="9999-12-31T23:59:59Z")]
    out = Decoder(SCHEMA).decode(lines)
    assert out.batches[0].times.tolist() == pytest.approx([second] * 5 + [second + 0.0005])
    assert [(d.index, d.field) for d in out.dead] == [(6, "timestamp"), (7, "timestamp"), (8, "timestamp")]


def test_a_replay_of_epoch_millisecond_events_alerts_like_seconds(tmp_path):
    """The crash loop of a worker that read milliseconds as seconds: the same alerts as the RFC 3339 stream."""
    import inferwatch.streams.replay as replay
    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.testing.services import ROOT

    demo = (ROOT / "examples" / "card_fraud_stream.jsonl").read_bytes().splitlines()
    as_ms = []
    for line in demo:
        try:
            e = orjson.loads(line)
            e["timestamp"] = round(_seconds_of(e["timestamp"]) * 1000)
            as_ms.append(orjson.dumps(e))
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            as_ms.append(line)
    (tmp_path / "ms.jsonl").write_bytes(b"\n".join(as_ms))
    (tmp_path / "s.jsonl").write_bytes(b"\n".join(demo))
    got, events = {}, {}
    for name in ("ms", "s"):
        out = io.BytesIO()
        summary = replay.replay_file(tmp_path / f"{name}.jsonl", MonitorConfig(), out)
        got[name] = [orjson.loads(x) for x in out.getvalue().splitlines()]
        events[name] = summary.events
    assert got["ms"] == got["s"] and got["s"] and events["ms"] == events["s"] > 29_000


def _seconds_of(ts) -> float:
    from datetime import datetime

    if isinstance(ts, (int, float)):
        return float(ts)
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_deep_nesting_is_a_dead_letter_not_a_recursion_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    inside = ev(1, features={"amount": 1.0})[:-2] + b',"deep":' + deep + b"}}"
    for bad in (deep, inside):
        out = Decoder(SCHEMA).decode([ev(0), bad, ev(2)])
        assert out.events == 2 and [d.index for d in out.dead] == [1]


NEIGHBOUR_CASES = [  # lines where two JSON readers disagree: duplicate keys, lone surrogates, big integers
    b'{"event_id":"a","model":"m","timestamp":1793491200,"features":{"amount":1,"amount":"s"}}',
    b'{"event_id":"x","event_id":null,"model":"m","timestamp":1793491200,"features":{}}',
    b'{"event_id":"a","model":"m","model":[1],"timestamp":1793491200,"features":{}}',
    b'{"event_id":"a","model":"m","timestamp":1793491200,"features":{},"features":5}',
    b'{"event_id":"a","model":"m","timestamp":1793491200,"features":{"country":"\\ud83d"}}',
    b'{"event_id":"a","model":"m","timestamp":1793491200,"features":{"amount":123456789012345678901234567890}}',
    b'{"event_id":"a","model":"m","timestamp":1793491200,"features":{"amount":"s","amount":1}}',
]


@pytest.mark.parametrize("line", NEIGHBOUR_CASES)
def test_a_line_s_fate_is_the_same_alone_and_beside_bad_lines(line):
    alone = Decoder(SCHEMA).decode([line])
    beside = Decoder(SCHEMA).decode([ev(0), line, b"garbage", ev(3)])
    assert bool(alone.dead) == any(d.index == 1 for d in beside.dead)
    assert alone.events + 2 == beside.events


def test_duplicate_keys_get_one_reading_in_the_guard():
    """The first of duplicate keys counts, on the per-event path as in the batch decoder."""
    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.streams.guard import Guard

    guard = Guard(MonitorConfig.model_validate({"default": {
        "columns": {"amount": {"type": "numeric"}},
        "rules": [{"kind": "expression", "expression": "amount > 10000", "action": "block"}]}}))
    event = b'{"event_id":"e","model":"m","timestamp":1793491200,"features":{"amount":20000,"amount":5}}'
    assert guard.check(event).action == guard.check_batch([event])[0].action == "block"


@settings(max_examples=300, deadline=None)
@given(error=st.text(), raw=st.binary(max_size=3000), offset=st.integers(0, 2**62),
       cap=st.one_of(st.none(), st.integers(600, 8192)))
def test_a_dead_letter_encodes_to_its_record_byte_for_byte(error, raw, offset, cap):
    """The typed fast path writes exactly what ``record`` says (any error text, any bytes, under or over the cap)."""
    dead = DeadLetter(error, 0, raw)
    source = {"topic": "t", "partition": 3, "offset": offset}
    assert dead.encoded(source, cap) == orjson.dumps(dead.record(source, cap))


@given(st.lists(st.one_of(st.text(), st.text(alphabet="abc-0123456789"))))
def test_text_arrays_give_back_the_strings_they_were_made_of(strings):
    """Packed ids and times (ASCII fast path or not): every string back, whole, one by one and sliced."""
    from inferwatch.detectors.types import TextArray

    packed = TextArray.from_list(strings)
    assert packed.tolist() == strings and [packed[i] for i in range(len(strings))] == strings
    assert packed.slice(len(strings) // 2, len(strings)).tolist() == strings[len(strings) // 2:]
    assert TextArray.from_list(iter(strings)).tolist() == strings


@pytest.mark.parametrize("bad", [b"9" * 400, b"[" * 200_000 + b"]" * 200_000])
def test_a_timestamp_too_large_or_too_deep_is_no_time_not_a_crash(bad):
    """A 400-digit ``timestamp``, or one nested 200,000 deep (poison pills for the route stage and the
    labels' reader, which read times before the decoder does): NaN, as any unreadable time is, and the
    messages beside it keep theirs."""
    from inferwatch.streams.decode import event_time, event_times, models_and_times

    huge = b'{"event_id": "e", "model": "m", "timestamp": ' + bad + b"}"
    fine = b'{"event_id": "f", "model": "m", "timestamp": 1793491200000}'
    assert math.isnan(event_time(huge)) and event_time(fine) == 1793491200.0
    times = event_times([huge, fine])
    assert math.isnan(times[0]) and times[1] == 1793491200.0
    models, times = models_and_times([fine, huge, b'{"model": "m", "timestamp": "2026-11-01T00:00:00Z"}'])
    assert models[0] == models[2] == "m" and math.isnan(times[1]) and times[2] == 1793491200.0
