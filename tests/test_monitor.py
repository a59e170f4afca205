"""The monitor end to end on arrays: quiet on stationary data, loud on changes, state round-trips."""

import itertools
import math
import re

import numpy as np
import pytest

from inferwatch.detectors.coding import NumericCodebook
from inferwatch.detectors.config import MonitorConfig
from inferwatch.detectors.lanes import as_if_live
from inferwatch.detectors.monitor import Monitor, concat_batches
from inferwatch.detectors.types import Batch, CategoricalArray, NumericArray
from inferwatch.errors import ConfigError, StateError


def batch(start, n, x, country):
    ids = np.array([f"e{i}" for i in range(start, start + n)], dtype=object)
    return Batch("m", ids, 1.7e9 + np.arange(start, start + n) / 100.0,
                 {"x": NumericArray(x), "country": CategoricalArray.from_labels(list(country))})


def stream(rng, n, start, shift=0.0, new_share=0.0):
    x = rng.normal(shift, 1.0, n)
    c = rng.choice(["US", "DE", "FR"], n, p=[0.6, 0.3, 0.1]).astype(object)
    c[rng.random(n) < new_share] = "BR"
    return batch(start, n, x, c)


def test_quiet_on_stationary_then_fires_once_per_episode():
    rng = np.random.default_rng(3)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(stream(rng, 20000, 0))
    assert mon.process(stream(rng, 50000, 0)) == []
    alerts = mon.process(stream(rng, 10000, 50000, shift=1.0))
    firing = [(a.feature, a.detector) for a in alerts if a.status == "firing"]
    assert ("x", "mean") in firing
    assert len(firing) == len(set(firing)), "one firing per episode"
    assert all(a.feature == "x" for a in alerts)
    resolved = [a for a in mon.process(stream(rng, 30000, 60000)) if a.status == "resolved"]
    assert ("x", "mean") in {(a.feature, a.detector) for a in resolved}


def test_warmup_prefix_is_the_baseline_without_reference():
    rng = np.random.default_rng(4)
    mon = Monitor(MonitorConfig.model_validate({"default": {"warmup_events": 5000}}))
    assert mon.process(stream(rng, 30000, 0)) == []
    assert mon.models["m"].live_from == 5000
    alerts = mon.process(stream(rng, 5000, 30000, new_share=0.05))
    assert [(a.feature, a.detector) for a in alerts] == [("country", "new_category")]
    assert "'BR'" in alerts[0].message


def test_state_round_trips_and_continues_identically():
    rng = np.random.default_rng(5)
    a, b = Monitor(MonitorConfig()), None
    a.fit_reference(stream(rng, 20000, 0))
    a.process(stream(rng, 7777, 0))
    b = Monitor.from_bytes(a.to_bytes(), MonitorConfig())
    assert b.to_bytes() == a.to_bytes()
    tail = stream(rng, 8000, 7777, shift=0.7)
    got_a = [(x.alert_id, x.row) for x in a.process(tail)]
    got_b = [(x.alert_id, x.row) for x in b.process(tail)]
    assert got_a == got_b and got_a


def test_a_model_keeps_the_block_size_it_was_built_with():
    """A model saved before states said their block size was built with 32 events a block (the default then):
    read with today's default (16), it goes on with 32, alert for alert, as the monitor that saved it would."""
    import msgspec

    rng = np.random.default_rng(9)
    old = MonitorConfig.model_validate({"default": {"block_size": 32}})
    saved = Monitor(old)
    saved.fit_reference(stream(rng, 20000, 0))
    saved.process(stream(rng, 7777, 0))
    raw = msgspec.msgpack.decode(saved.to_bytes())
    for model in raw["models"]:
        del model["block"]  # as states were saved before they kept it
    read = Monitor.from_bytes(msgspec.msgpack.encode(raw), MonitorConfig())
    assert read.models["m"].block == 32 and MonitorConfig().default.block_size == 16
    fresh = Monitor(MonitorConfig())  # a model built today: blocks of 16
    fresh.fit_reference(stream(np.random.default_rng(9), 20000, 0))
    assert fresh.models["m"].block == 16
    tail = stream(rng, 8000, 7777, shift=0.7)
    want = [(a.alert_id, a.row, a.score) for a in saved.process(tail)]
    assert want and [(a.alert_id, a.row, a.score) for a in read.process(tail)] == want


def test_state_version_is_checked():
    mon = Monitor(MonitorConfig())
    import msgspec
    data = msgspec.msgpack.encode({"version": 999, "models": []})
    with pytest.raises(StateError, match="state version"):
        Monitor.from_bytes(data, MonitorConfig())
    assert Monitor.from_bytes(mon.to_bytes(), MonitorConfig()).models == {}


def test_type_mismatch_with_config_is_an_error():
    rng = np.random.default_rng(6)
    cfg = MonitorConfig.model_validate({"default": {"columns": {"x": {"type": "categorical"}}}})
    with pytest.raises(ConfigError, match="columns.x.type"):
        Monitor(cfg).fit_reference(stream(rng, 1000, 0))


def test_a_share_that_falls_is_said_to_fall():
    rng = np.random.default_rng(1)

    def batch(p, n, start):
        codes = (rng.random(n) < p).astype(np.int64)
        return Batch("m", [f"e{start + i}" for i in range(n)], np.arange(start, start + n, dtype=float),
                     {"c": CategoricalArray(codes, ("a", "b"))})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0.8, 20_000, 0))
    messages = [a.message for a in mon.process(batch(0.6, 5_000, 20_000))]
    assert messages and all(" fell from " in m and " rose " not in m for m in messages), messages


def test_a_mostly_missing_column_that_fills_in_is_caught_and_a_steady_one_is_not():
    """A column missing 95 % of the time that turns up three times as often (an upstream default filled in,
    a new source): the share of missing values fell, said as such. The same column kept at 95 %: quiet."""
    rng = np.random.default_rng(8)

    def batch(present, n, start):
        x = rng.normal(size=n)
        x[rng.random(n) >= present] = np.nan
        return Batch("m", [f"e{start + i}" for i in range(n)], np.arange(start, start + n, dtype=float),
                     {"x": NumericArray(x)})

    steady, fills = Monitor(MonitorConfig()), Monitor(MonitorConfig())
    reference = batch(0.05, 20_000, 0)
    steady.fit_reference(reference)
    fills.fit_reference(reference)
    assert steady.process(batch(0.05, 60_000, 20_000)) == []
    alerts = [a for a in fills.process(batch(0.15, 5_000, 20_000)) if a.status == "firing"]
    assert [(a.feature, a.detector) for a in alerts][:1] == [("x", "missing")], alerts
    assert " share of missing values fell from 9" in alerts[0].message, alerts[0].message


def test_segments_survive_a_warm_up_cut_into_batches_and_saved_midway():
    """The warm-up is kept across batches (and in the saved state): its segment tags too, so each segment
    value gets detectors of its own however the warm-up was cut."""
    config = MonitorConfig.model_validate({"default": {"segments": ["region"], "warmup_events": 2400}})
    rng = np.random.default_rng(3)

    def batch(lo, n):
        regions = CategoricalArray.from_labels(["eu" if i % 2 else "us" for i in range(lo, lo + n)])
        return Batch("m", [f"e{i}" for i in range(lo, lo + n)], np.arange(lo, lo + n, dtype=float),
                     {"x": NumericArray(rng.normal(size=n))}, {"region": regions})

    mon = Monitor(config)
    for lo in range(0, 3000, 700):
        mon.process(batch(lo, min(700, 3000 - lo)))
        mon = Monitor.from_bytes(mon.to_bytes(), config)  # as a worker restarted after each batch would
    assert sorted(mon.models["m"].segment_monitors) == [("region", "eu"), ("region", "us")]
    fresh = Monitor(config)
    fresh.process(batch(0, 2400))  # the warm-up, no more: each segment's lanes count its own events from here
    for seg in fresh.models["m"].segment_monitors.values():
        assert all((col.state.run_start == seg.events).all() for col in seg.columns.values() if col.state is not None)


@pytest.mark.parametrize("where", ["everywhere", "eu"])
def test_one_cause_one_alert_whole_model_before_its_segments(where):
    """``x`` moves on all the traffic: the whole model's alert says it, not one more per region (the regions'
    detectors fire while its episode is open); moved in one region only, that region's alert comes first.
    The same alerts whatever the batch cuts."""
    config = MonitorConfig.model_validate({"default": {"segments": ["region"]}})
    rng = np.random.default_rng(8)
    regions = rng.choice(["eu", "us", "ap"], 70_000).astype(object)
    x = rng.normal(size=70_000)
    moved = np.arange(70_000) >= 40_000
    x[moved & ((regions == where) | (where == "everywhere"))] += 0.5

    def part(lo, hi):
        return Batch("m", [f"e{i}" for i in range(lo, hi)], 1.7e9 + np.arange(lo, hi) / 10.0,
                     {"x": NumericArray(x[lo:hi])}, {"region": CategoricalArray.from_labels(list(regions[lo:hi]))})

    runs = []
    for cut in (50_000, 4_321):
        mon = Monitor(config)
        mon.fit_reference(part(0, 20_000))
        fired = []
        for lo in range(20_000, 70_000, cut):
            fired += [(lo - 20_000 + a.row, a.segment) for a in mon.process(part(lo, min(lo + cut, 70_000)))
                      if a.status == "firing" and a.kind == "drift"]
            mon = Monitor.from_bytes(mon.to_bytes(), config)
        runs.append(fired)
    assert runs[0] == runs[1] and runs[0]
    if where == "everywhere":
        assert [segment for _, segment in runs[0]] == [None]
    else:
        assert runs[0][0][1] == {"region": "eu"} and all(segment in (None, {"region": "eu"}) for _, segment in runs[0])


def test_repeated_ids_are_caught_whatever_the_batches():
    """An id column pages only when ids start to repeat (a retried or double-logged request): the
    ``<id>.repeat`` share, with the same alerts however the stream is cut into batches."""
    rng = np.random.default_rng(5)
    n, change = 30_000, 20_000
    ids = [f"req-{i}" for i in range(n)]
    for i in range(change, n):
        if rng.random() < 0.05:
            ids[i] = ids[i - int(rng.integers(1, 500))]  # a recent request logged again
    x = rng.normal(size=n)

    def run(size):
        mon = Monitor(MonitorConfig())
        alerts = []
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            alerts += mon.process(Batch("m", [f"e{i}" for i in range(lo, hi)], np.arange(lo, hi, dtype=float),
                                        {"request_id": CategoricalArray.from_labels(ids[lo:hi]),
                                         "x": NumericArray(x[lo:hi])}))
        return mon, [(a.feature, a.detector, a.status, a.event_id) for a in alerts]

    mon, alerts = run(4096)
    assert mon.models["m"].roles["request_id"] == "identifier"
    fired = [a for a in alerts if a[2] == "firing"]
    assert [a[:2] for a in fired] == [("request_id.repeat", "mix")]
    assert int(fired[0][3][1:]) >= change  # not before the change
    assert run(1000)[1] == alerts


@pytest.mark.parametrize("after, said", [(7_200.0, "median 120 -> 7,200 (about x60.0)"),
                                         (60.0, "median 120 -> 60.0 (about /2.00)")])
def test_a_column_constant_in_its_baseline_that_moves_either_way_is_caught_at_once(after, said):
    """A value the baseline always had (a label delay, a schema version): its move above is seen as its move
    below is (an edge just above the baseline's largest value), within a few events, said in its units."""
    values = np.full(20_000, 120.0)
    values[15_000:] = after
    found = Monitor(MonitorConfig()).process(Batch("m", [f"e{i}" for i in range(20_000)], np.arange(20_000) * 0.01,
                                                   {"x": NumericArray(values)}))
    firing = [a for a in found if a.status == "firing"]
    assert firing and 15_000 <= firing[0].row < 15_010, firing
    assert said in firing[0].message, firing[0].message


def test_times_and_counters_in_features_are_watched_by_their_age_and_repeats_not_their_level():
    """A feature holding epoch milliseconds (``created_at``) and a sequence number (``seq``) climb with
    the stream: their level always drifts. They are a ``timestamp`` (watched by its age, event time -
    its time) and an ``identifier`` (its repeats): quiet while the stream is steady, whatever the
    batches and a save between them, and a feed gone stale (an hour old) is caught on the age."""
    rng = np.random.default_rng(8)
    n, change = 40_000, 30_000
    times = 1.79e9 + np.arange(n) * 0.5 + rng.uniform(0, 0.4, n)
    created = (times - rng.uniform(0, 60, n)) * 1e3
    created[change:] -= 3_600e3
    seq = 700_000.0 + np.arange(n)
    x = rng.normal(size=n)

    def run(size):
        config = MonitorConfig()
        mon, alerts = Monitor(config), []
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            alerts += mon.process(Batch("m", [f"e{i}" for i in range(lo, hi)], times[lo:hi],
                                        {"created_at": NumericArray(created[lo:hi]), "seq": NumericArray(seq[lo:hi]),
                                         "x": NumericArray(x[lo:hi])}))
            mon = Monitor.from_bytes(mon.to_bytes(), config)
        return mon, [(a.feature, a.detector, a.status, a.event_id) for a in alerts]

    mon, alerts = run(4096)
    assert mon.models["m"].roles["created_at"] == "timestamp" and mon.models["m"].roles["seq"] == "identifier"
    fired = [a for a in alerts if a[2] == "firing"]
    assert [a[0] for a in fired] == ["created_at.age"] and fired[0][1] in ("mean", "shape"), fired
    assert change <= int(fired[0][3][1:]) < change + 50
    assert run(3000)[1] == alerts


def test_iso_dates_and_times_in_text_are_watched_by_their_age():
    """``event_date`` (the event's own day) and ``last_login`` (ISO 8601 text, minutes before the event):
    a new day is not a new label, and a login feed a day stale is caught on ``last_login.age``."""
    import datetime as dt

    rng = np.random.default_rng(9)
    n, change = 40_000, 30_000
    times = 1.79e9 + np.arange(n) * 4.0  # about two days
    stale = np.where(np.arange(n) >= change, 86_400.0, 0.0)

    def iso(t, fmt):
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime(fmt)

    day = [iso(t, "%Y-%m-%d") for t in times]
    login = [iso(t - s - rng.exponential(600.0), "%Y-%m-%dT%H:%M:%SZ") for t, s in zip(times, stale)]
    mon, alerts = Monitor(MonitorConfig()), []
    for lo in range(0, n, 5_000):
        hi = lo + 5_000
        alerts += mon.process(Batch("m", [f"e{i}" for i in range(lo, hi)], times[lo:hi],
                                    {"event_date": CategoricalArray.from_labels(day[lo:hi]),
                                     "last_login": CategoricalArray.from_labels(login[lo:hi])}))
    assert mon.models["m"].roles == {"event_date": "timestamp", "last_login": "timestamp"}
    fired = [(a.feature, int(a.event_id[1:])) for a in alerts if a.status == "firing"]
    assert [f for f, _ in fired] == ["last_login.age"] and change <= fired[0][1] < change + 50


def test_numbers_sent_as_text_are_watched_as_numbers():
    """``amount`` arrives as text (``"12.50"``, and ``"N/A"`` 2 % of the time): nearly every value is a label
    never seen before, so as a categorical it would only be an id. It is ``numeric_text``: quiet while
    steady, and cents sent instead of euros are caught on ``amount.value`` at once."""
    rng = np.random.default_rng(10)
    n, change = 30_000, 20_000
    amounts = np.round(rng.lognormal(3.0, 1.0, n), 2) * np.where(np.arange(n) >= change, 100.0, 1.0)
    text = [f"{a:.2f}" if rng.random() > 0.02 else "N/A" for a in amounts]
    mon, alerts = Monitor(MonitorConfig()), []
    for lo in range(0, n, 4_000):
        hi = min(lo + 4_000, n)
        alerts += mon.process(Batch("m", [f"e{i}" for i in range(lo, hi)], 1.79e9 + np.arange(lo, hi, dtype=float),
                                    {"amount": CategoricalArray.from_labels(text[lo:hi])}))
    assert mon.models["m"].roles["amount"] == "numeric_text"
    fired = [(a.feature, int(a.event_id[1:])) for a in alerts if a.status == "firing"]
    assert [f for f, _ in fired] == ["amount.value"] and change <= fired[0][1] < change + 20


def _merchant_codes(rng, n, new_share=0.0):
    """Merchant category codes sent as numbers: 200 four-digit codes, Zipf-like; ``new_share`` of the events
    carry 6051, a code never seen before."""
    codes = np.random.default_rng(7).choice(np.arange(1000.0, 10_000.0), 200, replace=False)  # (6051 not among them)
    codes = codes[codes != 6051.0]
    p = 1.0 / np.arange(1, len(codes) + 1) ** 1.1
    out = rng.choice(codes, n, p=p / p.sum())
    out[rng.random(n) < new_share] = 6051.0
    return out


def test_integer_codes_sent_as_numbers_are_watched_as_labels_and_a_new_code_is_named():
    """``mcc`` holds 200 four-digit codes: as a number a new code (6051, 3 % of the traffic) lands inside a
    bin its neighbours fill and was found after thousands of events or never; as labels (``mcc.code``, beside
    the number) it is a new category, named, within a few hundred. A steady stream of codes stays quiet."""
    rng = np.random.default_rng(60)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, _merchant_codes(rng, 20_000), ["US"] * 20_000))
    assert mon.models["m"].roles["x"] == "code"
    quiet = [a for k in range(4) for a in mon.process(batch(10_000 * k, 10_000, _merchant_codes(rng, 10_000),
                                                            ["US"] * 10_000))]
    assert quiet == []
    fired = [a for a in mon.process(batch(40_000, 10_000, _merchant_codes(rng, 10_000, 0.03), ["US"] * 10_000))
             if a.status == "firing"]
    assert [(a.feature, a.detector) for a in fired] == [("x.code", "new_category")], fired
    assert fired[0].row < 1_000 and "'6051'" in fired[0].message, fired[0].message


def test_a_column_the_config_calls_categorical_keeps_its_numbers_as_labels():
    """Codes sent as text (``"5411"``) read as numbers would be ``numeric_text``; ``type: categorical`` in
    the config says they are labels: a new code is a new category of the column itself."""
    rng = np.random.default_rng(61)
    labels = lambda n, share=0.0: [str(int(v)) for v in _merchant_codes(rng, n, share)]  # noqa: E731
    config = MonitorConfig.model_validate({"default": {"columns": {"country": {"type": "categorical"}}}})
    mon = Monitor(config)
    mon.fit_reference(batch(0, 20_000, rng.normal(size=20_000), labels(20_000)))
    assert mon.models["m"].roles["country"] == "categorical"
    fired = [a for a in mon.process(batch(0, 10_000, rng.normal(size=10_000), labels(10_000, 0.03)))
             if a.status == "firing"]
    assert [(a.feature, a.detector) for a in fired] == [("country", "new_category")], fired


def test_grouped_thousands_are_numbers_but_a_state_saved_before_reads_them_as_it_did():
    """``"1,234.56"`` is a number of a ``numeric_text`` column taken now; a column whose role a state saved
    before this reading took (without ``grouped_numbers``) keeps reading such values as missing: its
    baseline was taken so, and a steady stream must not page after an upgrade."""
    from inferwatch.detectors.monitor import ModelMonitor

    rng = np.random.default_rng(12)
    amounts = np.round(rng.lognormal(5.0, 1.5, 6_000), 2)
    text = [f"{a:,.2f}" for a in amounts]  # about 2 % of them past 1,000: grouped
    batch = Batch("m", [f"e{i}" for i in range(6_000)], 1.79e9 + np.arange(6_000.0),
                  {"amount": CategoricalArray.from_labels(text)})
    config = MonitorConfig.model_validate({"default": {"warmup_events": 2_000}})
    mon = Monitor(config)
    mon.process(batch)
    model = mon.models["m"]
    assert model.roles["amount"] == "numeric_text" and "amount" in model.grouped_numbers
    grouped = [t for t in text if "," in t][0]
    values = model._derived("amount", CategoricalArray.from_labels([grouped]), np.zeros(1))[1].values
    assert values[0] == float(grouped.replace(",", ""))
    saved = model.to_dict()
    del saved["grouped_numbers"]  # as inferwatch before this reading saved it
    before = ModelMonitor.from_dict(saved, config.for_model("m"))
    assert np.isnan(before._derived("amount", CategoricalArray.from_labels([grouped]), np.zeros(1))[1].values[0])


def test_a_long_tail_column_whose_rare_labels_keep_coming_stays_quiet():
    """A Zipf column of 20,000 labels: a sixth of the live events carry labels the reference never saw, as
    Good-Turing expects; the share of a top label among the labels the reference saw is then higher than in
    the reference, since the reference over-counts its rare labels. Not a change."""
    rng = np.random.default_rng(11)
    ranks = np.arange(1, 20_001)
    p = ranks ** -1.1 / (ranks ** -1.1).sum()

    def skus(start, n):
        labels = np.array([f"SKU-{k:05d}" for k in rng.choice(20_000, n, p=p)], dtype=object)
        return Batch("m", np.array([f"e{i}" for i in range(start, start + n)], dtype=object),
                     1.7e9 + np.arange(start, start + n) / 100.0, {"sku": CategoricalArray.from_labels(list(labels))})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(skus(0, 10_000))
    fired = [a for start in range(0, 200_000, 20_000) for a in mon.process(skus(start, 20_000))]
    assert [a.message for a in fired] == []


def test_bursts_of_missing_values_like_the_reference_s_stay_quiet():
    """A feature missing in runs of 200 events, one run in every 4,000 (an upstream job that stalls now and
    then), the reference holding a few such runs: the same runs later are the reference's normal."""
    rng = np.random.default_rng(44)

    def bursty(start, n):
        x = rng.normal(50, 10, n)
        for w in range(0, n, 4_000):
            s = w + int(rng.integers(0, 4_000 - 200))
            x[s:s + 200] = np.nan
        return Batch("m", np.array([f"e{i}" for i in range(start, start + n)], dtype=object),
                     1.7e9 + np.arange(start, start + n) / 100.0, {"income": NumericArray(x)})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(bursty(0, 12_000))
    fired = [a for start in range(12_000, 132_000, 12_000) for a in mon.process(bursty(start, 12_000))]
    assert [a.message for a in fired] == []


def test_a_change_just_after_the_warm_up_is_described_over_its_own_events():
    """The lanes start at the end of the warm-up: an alert soon after it speaks of the events since the change,
    not of a run diluted by the whole warm-up."""
    import re

    rng = np.random.default_rng(8)
    mon = Monitor(MonitorConfig())
    warm = mon.config.for_model("m").warmup_events
    x = rng.normal(0.0, 1.0, warm + 2_000)
    x[warm:][rng.random(2_000) < 0.3] = np.nan
    fired = [a for a in mon.process(batch(0, len(x), x, ["US"] * len(x))) if a.status == "firing"]
    assert [(a.feature, a.detector) for a in fired] == [("x", "missing")]
    share, run = re.search(r"to about ([0-9.]+)% over the last ~(\d+) events", fired[0].message).groups()
    assert int(run) <= fired[0].row - warm + 1 and float(share) > 15, fired[0].message


def test_a_shift_the_warm_up_ends_in_is_not_its_normal():
    """Recovered bursts in the baseline widen the thresholds; a level shift half-way through the warm-up, that
    the stream stays in, does not disable the column: the stream is then unlike the baseline's mixture."""
    rng = np.random.default_rng(21)
    mon = Monitor(MonitorConfig())
    warm = mon.config.for_model("m").warmup_events
    x = rng.lognormal(3.0, 0.5, warm + 4_000)
    x[warm // 2:] *= 100
    fired = [a for a in mon.process(batch(0, len(x), x, ["US"] * len(x))) if a.status == "firing"]
    assert ("x", "mean") in {(a.feature, a.detector) for a in fired}


def test_a_label_that_vanishes_is_said_to_reach_zero():
    """The share in the words is measured since the run's most likely change point, not averaged over a run
    that began before the change."""
    import re

    rng = np.random.default_rng(12)
    labels = np.array(["DE", "FR", "US", "IT", "ES"], dtype=object)
    p = np.array([0.15, 0.25, 0.3, 0.2, 0.1])
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, rng.normal(0, 1, 20_000), rng.choice(labels, 20_000, p=p)))
    stream = np.concatenate([rng.choice(labels, 10_000, p=p), rng.choice(labels[1:], 5_000, p=p[1:] / p[1:].sum())])
    fired = [a for a in mon.process(batch(0, 15_000, rng.normal(0, 1, 15_000), stream)) if a.status == "firing"]
    assert [(a.feature, a.detector) for a in fired] == [("country", "mix")]
    share = float(re.search(r"'DE' fell from [0-9.]+% to about ([0-9.]+)%", fired[0].message).group(1))
    assert share < 0.5, fired[0].message  # (the run averaged: about 1 %)


def test_a_weak_shift_that_lasts_stays_one_episode():
    """A column capped at its 90th percentile upstream from some event on: one firing, no resolution while the
    cap lasts (the evidence of a weak shift wanders; the episode closes only once it is nearly gone)."""
    rng = np.random.default_rng(1)
    ref = rng.lognormal(3.5, 0.6, 20_000)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, len(ref), ref, ["US"] * len(ref)))
    cap = float(np.quantile(ref, 0.9))
    found = []
    for k in range(6):
        x = np.minimum(rng.lognormal(3.5, 0.6, 10_000), cap)
        found += [(a.detector, a.status) for a in mon.process(batch(10_000 * k, 10_000, x, ["US"] * 10_000))]
    assert found and all(status == "firing" for _, status in found), found
    assert len(found) == len({d for d, _ in found}), found


def test_a_weak_shift_found_after_thousands_of_events_does_not_flap_and_its_hold_survives_a_restart():
    """A shift of 0.06 SD for 100,000 events, found after 13,000: its evidence wanders near zero while it
    lasts. The episode closes only once the lane that fired has stayed quiet for as long as its run (before:
    resolved at 65,615, fired again at 95,065), and it does close once the shift is over (quiet counted
    under a third of the threshold: under a tenth it stayed open for hundreds of thousands of events). A state saved
    while the episode is open continues identically."""
    rng = np.random.default_rng(52)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, rng.normal(0.0, 1.0, 20_000), ["US"] * 20_000))
    parts = [batch(10_000 * k, 10_000, rng.normal(0.06 if k < 10 else 0.0, 1.0, 10_000), ["US"] * 10_000)
             for k in range(16)]
    found = [(a.status, 10_000 * k + a.row, a.alert_id) for k, part in enumerate(parts[:5])
             for a in mon.process(part) if a.kind != "incident"]
    saved = Monitor.from_bytes(mon.to_bytes(), MonitorConfig())
    later = [[(a.status, a.row, a.alert_id) for a in m.process(part) if a.kind != "incident"]
             for m in (mon, saved) for part in parts[5:]]
    assert later[:11] == later[11:]
    found += [(status, 10_000 * (5 + k) + row, i) for k, seen in enumerate(later[:11]) for status, row, i in seen]
    assert [status for status, _, _ in found] == ["firing", "resolved"] and found[1][1] > 100_000, found


def _amounts(rng, n, start, rounded=False, factor=1.0):
    amount = np.round(np.exp(rng.normal(3.0, 1.0, n)) * factor, 2)  # in cents, as a price is
    if rounded:
        amount = np.round(amount)
    return batch(start, n, amount, rng.choice(["US", "DE"], n).astype(object))


def test_a_number_rounded_upstream_is_caught_by_its_decimals_and_a_unit_slip_stays_one_alert():
    """Amounts rounded to whole units keep their quantile bins' shares: only their precision says it, as
    one alert on the column (detector ``decimals``). A x100 slip moves both the values and the precision:
    still one alert, the precision joining the values' episode. Stationary amounts: no alert."""
    rng = np.random.default_rng(8)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(_amounts(rng, 20_000, 0))
    assert mon.process(_amounts(rng, 40_000, 0)) == []
    firing = [a for a in mon.process(_amounts(rng, 5_000, 40_000, rounded=True)) if a.status == "firing"
              and a.kind != "incident"]
    assert [(a.feature, a.detector, a.kind) for a in firing] == [("x", "decimals", "data_quality")]
    assert firing[0].row < 20 and "'integer'" in firing[0].message

    slip = Monitor(MonitorConfig())
    slip.fit_reference(_amounts(rng, 20_000, 0))
    alerts = [a for a in slip.process(_amounts(rng, 5_000, 0, factor=100.0)) if a.kind != "incident"]
    assert [(a.feature, a.status) for a in alerts] == [("x", "firing")]

    off = Monitor(MonitorConfig.model_validate({"default": {"columns": {"x.decimals": {"enabled": False}}}}))
    off.fit_reference(_amounts(rng, 20_000, 0))
    assert off.process(_amounts(rng, 5_000, 0, rounded=True)) == []


def test_events_sent_twice_are_caught_by_their_event_ids_whatever_the_batch_cuts_and_saves():
    """A producer that re-sends 3 % of its events (the same ``event_id`` again, a few events later) raises a
    ``data_quality`` alert on ``event_id.repeat``; the ids carry across batches and a saved state, so where
    the batches are cut changes nothing. Unique ids: no alert."""
    rng = np.random.default_rng(12)

    def events(start, n, resent=0.0):
        b = stream(rng, n, start)
        ids = np.array([f"e{i}" for i in range(start, start + n)], dtype=object)
        again = np.flatnonzero(rng.random(n) < resent)
        again = again[again >= 50]
        ids[again] = ids[again - rng.integers(1, 50, len(again))]
        return Batch("m", ids, b.times, b.columns)

    config = MonitorConfig.model_validate({"default": {"warmup_events": 10_000}})
    quiet, changed = events(0, 40_000), events(40_000, 6_000, resent=0.03)
    runs = []
    for cut in (1_000, 7_777):
        mon = Monitor(config)
        alerts = []
        for base, part in ((0, quiet), (len(quiet), changed)):
            for lo in range(0, len(part), cut):
                alerts += [(base + lo + a.row, a.feature, a.detector, a.kind)
                           for a in mon.process(part.slice(lo, min(lo + cut, len(part))))
                           if a.status == "firing" and a.kind != "incident"]
                mon = Monitor.from_bytes(mon.to_bytes(), config)
        runs.append(alerts)
    assert [a[1:] for a in runs[0]] == [("event_id.repeat", "mix", "data_quality")], runs[0]
    assert runs[0][0][0] >= len(quiet) and runs[0] == runs[1]


def test_decimals_read_exactly_so_a_growing_level_is_not_a_change_of_precision():
    """A number's decimals do not follow its size: unrounded values whose level grows tenfold (their drift
    silenced by the config) raise nothing, where a tolerance relative to the value once turned large
    values into '1-2 decimals' and paged."""
    rng = np.random.default_rng(12)
    n = 120_000
    x = np.exp(np.linspace(np.log(2e5), np.log(2e6), n)) * np.exp(rng.normal(0, 0.3, n))
    config = MonitorConfig.model_validate({"default": {"columns": {"x": {"detectors": ["missing"]}}}})
    mon = Monitor(config)
    alerts = mon.process(Batch("m", [f"e{i}" for i in range(n)], 1.7e9 + np.arange(n) / 100.0,
                               {"x": NumericArray(x)}))
    assert "x.decimals" in mon.models["m"].columns and alerts == []


def test_event_ids_are_watched_against_the_streams_own_first_events_and_a_feature_named_event_id_keeps_its_own():
    """A reference file's ids say nothing of how the live producer delivers (an exported set is usually
    deduplicated): with one, the events' ids get a baseline of their own from the first live events (kept
    through a saved state), so ordinary redeliveries are not news and a producer that starts re-sending is.
    A feature that is itself named ``event_id`` keeps its ``event_id.repeat``."""
    rng = np.random.default_rng(0)

    def events(start, n, resent, own_ids=False):
        ids = [f"e{i}" for i in range(start, start + n)]
        for i in np.flatnonzero(rng.random(n) < resent):
            if i >= 20:
                ids[i] = ids[i - int(rng.integers(1, 20))]
        columns = {"x": NumericArray(rng.normal(0, 1, n))}
        if own_ids:
            columns["event_id"] = CategoricalArray.from_labels(ids)
            ids = [f"envelope-{i}" for i in range(start, start + n)]
        return Batch("m", ids, 1.7e9 + np.arange(start, start + n) / 100.0, columns)

    mon = Monitor(MonitorConfig())
    mon.fit_reference(events(0, 20_000, 0.0))  # deduplicated
    assert "event_id.repeat" not in mon.models["m"].columns  # not against the file
    first, rest = events(20_000, 3_000, 0.002), events(23_000, 57_000, 0.002)
    assert mon.process(first) == []
    mon = Monitor.from_bytes(mon.to_bytes(), MonitorConfig())  # half-way through its baseline
    assert mon.process(rest) == []  # without a word, and ordinary redeliveries are in its baseline
    assert "event_id.repeat" in mon.models["m"].columns
    fired = [(a.feature, a.kind) for a in mon.process(events(80_000, 10_000, 0.03))
             if a.status == "firing" and a.kind != "incident"]
    assert fired == [("event_id.repeat", "data_quality")]

    own = Monitor(MonitorConfig())
    own.fit_reference(events(0, 20_000, 0.0, own_ids=True))
    fired = [(a.feature, a.kind, a.message) for a in own.process(events(20_000, 10_000, 0.2, own_ids=True))
             if a.status == "firing" and a.kind != "incident"]
    assert [f[:2] for f in fired] == [("event_id.repeat", "data_quality")]
    assert "share of ids that repeat one of the last 4,096 rose" in fired[0][2], fired  # words, not a code's name


def test_a_feature_named_event_id_repeat_after_a_reference_stays_a_feature_of_its_own():
    """The events' own repeat flags never stand in for a column of the events with the same name: a numeric
    feature ``event_id.repeat`` first sent after a reference file is announced and watched as a number,
    whether the events' ids tell anything (unique) or not (all the same)."""
    rng = np.random.default_rng(5)
    for same_ids, reference, feature_from in itertools.product((False, True), (True, False), (0, 30_000)):
        def events(start, n, same_ids=same_ids, feature_from=feature_from):
            ids = ["same"] * n if same_ids else [f"e{i}" for i in range(start, start + n)]
            columns = {"x": NumericArray(rng.normal(0, 1, n))}
            if start >= 20_000 + feature_from:  # (before or after the flags have their baseline)
                columns["event_id.repeat"] = NumericArray(rng.normal(5, 1, n))
            return Batch("m", ids, 1.7e9 + np.arange(start, start + n) / 100.0, columns)

        mon = Monitor(MonitorConfig())
        if reference:
            mon.fit_reference(events(0, 20_000))
        said = []
        for lo in range(0 if reference else 20_000, 20_000 + feature_from + 40_000, 5_000):
            if lo >= 20_000 or not reference:
                said += [(a.feature, a.detector, a.status) for a in mon.process(events(lo, 5_000))]
            mon = Monitor.from_bytes(mon.to_bytes(), MonitorConfig())
        new = [s for s in said if s[0] == "event_id.repeat"]
        late = reference or feature_from > 0  # else it is in the warm-up: a column of the baseline
        assert new[:2] == ([("event_id.repeat", "new_column", "firing"), ("event_id.repeat", "new_column",
                                                                        "resolved")] if late else []), (
            same_ids, reference, feature_from, new)
        assert mon.models["m"].columns["event_id.repeat"].kind == "numeric"


def test_a_column_the_config_turns_off_is_not_watched_from_a_state_saved_before():
    """A state saved while a column was watched, read with a config that turns it off (a newer inferwatch's
    internal monitors, a user's edit): the column is not watched, its ids' window dropped."""
    rng = np.random.default_rng(2)
    ids = [f"e{i}" for i in range(30_000)]
    batch = Batch("m", ids, 1.7e9 + np.arange(30_000) / 100.0, {"x": NumericArray(rng.normal(0, 1, 30_000))})
    mon = Monitor(MonitorConfig())
    mon.process(batch)
    assert {"x.decimals", "event_id.repeat"} <= set(mon.models["m"].columns)
    off = MonitorConfig.model_validate({"default": {"columns": {"x.decimals": {"enabled": False},
                                                                 "event_id.repeat": {"enabled": False}}}})
    again = Monitor.from_bytes(mon.to_bytes(), off).models["m"]
    assert set(again.columns) == {"x"} and again.recent_ids == {}


def test_values_near_the_float_limit_raise_no_warning():
    """Values near 1e300 (a sentinel, a corrupt field) overflow the sums of squares: the statistics hold
    inf as they are, without numpy's warning on the user's terminal."""
    import warnings

    from inferwatch.detectors.stats import NumericStats

    stats = NumericStats.empty()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats.update(NumericArray(np.array([1e300, -1e300, 3e300, 5.0])))
        stats.update(NumericArray(np.array([1e300, 2e300])))
    assert stats.count == 6 and stats.max == 3e300


def _group_firings(reference: Batch, stream: Batch, cut: int) -> list[tuple[int, str]]:
    """(row, message) of the ``mix`` firings on a tail group over ``stream`` cut into batches of ``cut``, the
    state saved and read back after each."""
    mon = Monitor(MonitorConfig())
    mon.fit_reference(reference)
    fired = []
    for lo in range(0, len(stream), cut):
        fired += [(lo + a.row, a.message) for a in mon.process(stream.slice(lo, min(lo + cut, len(stream))))
                  if a.status == "firing" and a.detector == "mix" and "group" in a.message]
        mon = Monitor.from_bytes(mon.to_bytes(), MonitorConfig())
    return fired


def test_a_tail_label_that_rises_is_named_not_its_group_s_most_frequent_label_whatever_the_batch_cuts():
    """A rare label of a 400-label Zipf column rises to 0.8 % of the events; its hash group also holds the
    most frequent label past the top, which does not move and stays the more frequent. The alert names the
    one that rose, with any batch cuts and saved states (the labels of the run's last events carry between
    batches)."""
    from inferwatch.detectors.coding import CategoricalCodebook

    rng = np.random.default_rng(21)
    names = np.array([f"P{k:03d}" for k in range(400)], dtype=object)
    p = np.arange(1, 401) ** -1.0
    p /= p.sum()
    book = CategoricalCodebook.from_reference(CategoricalArray.from_labels(list(rng.choice(names, 30_000, p=p))))
    frequent = names[16]
    rare = next(n for n in names[200:] if book.group_of(n) == book.group_of(frequent))

    def events(start, n, rise=0.0):
        labels = rng.choice(names, n, p=p)
        labels[rng.random(n) < rise] = rare
        return Batch("m", np.array([f"e{i}" for i in range(start, start + n)], dtype=object),
                     1.7e9 + np.arange(start, start + n) / 100.0, {"code": CategoricalArray.from_labels(list(labels))})

    reference, change = events(0, 30_000), 20_000
    stream = concat_batches([events(0, change), events(change, 40_000, rise=0.008)])
    runs = [_group_firings(reference, stream, cut) for cut in (1_000, 7_777, 60_000)]
    for fired in runs:
        assert fired and fired[0][0] >= change, fired
        assert re.search(r"\((?:led by|mostly) '(\w+)'\)", fired[0][1]).group(1) == rare, fired[0][1]
    assert runs[0] == runs[1] == runs[2]


def test_a_label_that_vanishes_is_caught_near_its_information_bound():
    """A label of 2 % of the events stops: the information bound is ln(1e9) / -ln(0.98), about 1,025 events;
    the strongest downward tilt (-3) holds 95 % of it (a tilt of -1 held 63 %: about 2,000 events)."""
    rng = np.random.default_rng(22)
    labels = np.array(["A", "B", "C", "D"], dtype=object)
    p = np.array([0.5, 0.3, 0.18, 0.02])
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 40_000, rng.normal(0, 1, 40_000), rng.choice(labels, 40_000, p=p)))
    change = 20_000
    country = np.concatenate([rng.choice(labels, change, p=p), rng.choice(labels[:3], 20_000, p=p[:3] / p[:3].sum())])
    fired = [a for a in mon.process(batch(0, 40_000, rng.normal(0, 1, 40_000), country)) if a.status == "firing"]
    assert [(a.feature, a.detector) for a in fired] == [("country", "mix")]
    bound = math.log(1e9) / -math.log(0.98)
    assert fired[0].row - change < 1.5 * bound, (fired[0].row - change, bound)


def test_labels_that_come_in_runs_are_not_new_categories_when_the_reference_has_runs_too():
    """User ids in sessions (5 to 30 events in a row): almost no label of the reference is seen once, so
    Good-Turing says new labels are rare, yet most of the stream's users are new. The rate is measured
    between the reference's halves instead: quiet. A country that never came before still fires."""
    rng = np.random.default_rng(31)

    def sessions(start, n, first_user, new_country=0.0):
        users = np.repeat(np.arange(first_user, first_user + n), rng.integers(5, 31, n))[:n]
        country = rng.choice(["US", "DE", "FR"], n, p=[0.6, 0.3, 0.1]).astype(object)
        country[rng.random(n) < new_country] = "BR"
        return Batch("m", np.array([f"e{i}" for i in range(start, start + n)], dtype=object),
                     1.7e9 + np.arange(start, start + n) / 100.0,
                     {"user": CategoricalArray.from_labels([f"u{u}" for u in users]),
                      "country": CategoricalArray.from_labels(list(country))})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(sessions(0, 20_000, 0))
    assert [a.message for a in mon.process(sessions(0, 60_000, 10_000_000))] == []
    fired = [(a.feature, a.detector) for a in mon.process(sessions(60_000, 5_000, 20_000_000, new_country=0.05))
             if a.status == "firing"]
    assert fired == [("country", "new_category")]


def test_a_tail_group_of_one_frequent_label_keeps_its_share_and_a_group_of_labels_seen_once_gives_it_up():
    """Good-Turing's room for new labels comes out of the labels seen once, group by group: each tail group
    gives up its own labels seen once (before: every group gave up the same fraction, here about a third)."""
    from inferwatch.detectors.coding import CategoricalCodebook
    from inferwatch.detectors.lanes import build_lanes

    labels = [f"top{k}" for k in range(16) for _ in range(500)] + [f"often{k}" for k in range(20) for _ in range(20)]
    labels += [f"once{k}" for k in range(200)]
    column = CategoricalArray.from_labels(list(np.random.default_rng(35).permutation(np.array(labels, dtype=object))))
    book = CategoricalCodebook.from_reference(column)
    codes = book.encode(column)
    _, _, p0 = build_lanes(book, codes, ("mix",))
    n = len(labels)
    once = np.bincount([book.group_of(f"once{k}") for k in range(200)], minlength=book.n_codes)
    for g in range(book.other_code, book.unseen_code):  # (no label seen twice: a label seen once is worth 0)
        count = np.count_nonzero(codes == g)
        kept = max(count - once[g], 0.25 * count) / n  # (a group keeps at least a quarter of its share)
        assert abs(p0[g] - kept) < (0.1 * count + 1) / n, (g, p0[g], kept)
    assert abs(p0[book.unseen_code] - 200 / n) < 0.1 * 200 / n


def test_the_lanes_beyond_a_numeric_column_s_reference_range_do_not_drift_up_at_its_extremes_normal_rate():
    """A sample's extremes leave a share of about Exp(1)/n outside them (1/n on average, more than 6.7/n one
    time in 800): the tilt of 4 on an empty bin's 0.5/n drifted up past 6.7/n, so a long stream of one
    heavy-tailed column in 800 paged. That lane is normalised on 3/n (the 95 % bound of a zero count): at
    6.7/n every lane there drifts down (the tilt of 7 on p0 past 78/n only), and a unit slip is found as fast."""
    from inferwatch.detectors.coding import NumericCodebook
    from inferwatch.detectors.lanes import build_lanes, calibrate

    n = 20_000
    values = np.random.default_rng(32).normal(size=n)
    book = NumericCodebook.from_reference(values)
    codes = book.encode(NumericArray(values))
    names, rows, p0 = build_lanes(book, codes, ("mean", "shape"))
    lanes = calibrate(names, rows, p0, codes, math.log(1e9), 16)
    top = len(book.edges)
    for j in np.flatnonzero(lanes.target == top):
        true = p0.copy()
        true[top] = 6.7 / n
        true /= true.sum()
        assert true @ lanes.table[:, j] < 0, (lanes.theta[j], true @ lanes.table[:, j])
        assert np.sum(p0 * np.exp(lanes.table[:, j])) <= 1 + 1e-9  # (still a supermartingale under p0)


def _sessions(rng, n_sessions: int) -> np.ndarray:
    """Amounts of user sessions: 5-40 events in a row within 2 % of the session's own amount."""
    lengths = rng.integers(5, 41, n_sessions)
    bases = np.repeat(rng.lognormal(3.2, 1.1, n_sessions), lengths)
    return bases * (1 + 0.02 * rng.normal(size=bases.size))


def test_a_session_of_values_beyond_the_range_is_normal_where_the_reference_s_extremes_come_in_sessions():
    """A log of user sessions (each 5-40 events at near one amount): once in a few thousand sessions one
    lies beyond the reference's range, 5-40 values in a row, and each paged (a strong tilt there gains about
    4 nats a value). The reference shows how such values come: its halves' values beyond each other's range
    come a session at a time, and the lanes beyond the range are calibrated on that. A unit slip of all the
    traffic is still found within a session's length or two."""
    rng = np.random.default_rng(34)
    reference = _sessions(rng, 2_000)
    mon = Monitor(MonitorConfig())
    n = reference.size
    mon.fit_reference(batch(0, n, reference, ["US"] * n))
    quiet, beyond = [], 0
    for _ in range(6):  # six more references' worth: sessions beyond the range, on both sides
        live = _sessions(rng, 2_000)
        quiet += [a for a in mon.process(batch(n, live.size, live, ["US"] * live.size))
                  if a.status == "firing" and a.detector == "shape"]  # (the mean's excursions: not these lanes')
        n += live.size
        beyond += int(np.sum((live > reference.max()) | (live < reference.min())))
    assert beyond >= 40  # (at least a few sessions' worth)
    assert not quiet, [a.message for a in quiet]
    live = _sessions(rng, 200) * 100
    slipped = [a for a in mon.process(batch(n, live.size, live, ["US"] * live.size)) if a.status == "firing"]
    assert slipped and slipped[0].feature == "x" and slipped[0].row < 100, [(a.row, a.message) for a in slipped]


def test_a_cycle_the_reference_holds_twice_keeps_the_lanes_beyond_its_range():
    """Amounts on a cycle of 10,000 events, a reference of two: each half holds one cycle, so values beyond
    one half's range are few and alone, and a unit slip on 8 % of the traffic is found by the lanes beyond the
    range after a few dozen events (coding each quarter against the others made runs of half a cycle, and
    those lanes' thresholds rose to about 150: found after 200 events)."""
    rng = np.random.default_rng(36)

    def amounts(t):
        return np.round(np.exp(3 + np.sin(2 * np.pi * t / 10_000) + rng.normal(0, 0.3, t.size)), 0)

    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, amounts(np.arange(20_000)), ["US"] * 20_000))
    live = amounts(np.arange(20_000, 30_000))
    slipped = np.flatnonzero(rng.random(live.size) < 0.08)
    live[slipped[slipped >= 2_000]] *= 100
    fired = [a for a in mon.process(batch(20_000, 10_000, live, ["US"] * 10_000)) if a.status == "firing"]
    assert fired and fired[0].detector == "shape" and fired[0].row - 2_000 < 100, [(a.row, a.message) for a in fired]


def test_a_full_bin_at_one_end_of_the_range_leaves_the_other_end_s_lanes_as_they_were():
    """5 % of a reference's values at +inf (a sentinel) fill the bin above its range: that is not a run of
    values beyond it, and the lanes below the range keep the strength of a column without them."""
    from inferwatch.detectors.lanes import build_lanes

    values = np.random.default_rng(37).normal(size=20_000)
    sentinel = values.copy()
    sentinel[::20] = np.inf
    below = []
    for column in (values, sentinel):
        book = NumericCodebook.from_reference(column)
        codes = book.encode(NumericArray(column))
        names, rows, _ = build_lanes(book, codes, ("shape",), None, as_if_live(book, NumericArray(column), codes))
        strongest = np.flatnonzero((rows.target == 0) & (rows.theta == 10.0))
        below.append(float(rows.table[0, strongest[0]]))
    assert below[1] == pytest.approx(below[0], abs=0.2), below


def test_a_sparse_column_of_many_labels_expects_its_new_labels_among_its_present_values():
    """A coupon code, missing on 95 % of the events, a third of its codes seen once: Good-Turing's share of new
    labels is a share of the present values. Taken as a share of all events it left 61 % for the missing
    ones, and the column paged "share of missing values rose from 60.92% to about 98.46%" at once."""
    rng = np.random.default_rng(38)

    weights = np.arange(1, 3_001) ** -0.7

    def coupons(n, first):  # 3,000 codes, a long tail
        codes = rng.choice(3_000, n, p=weights / weights.sum())
        return np.where(rng.random(n) < 0.95, None, np.array([f"C{c}" for c in codes], dtype=object))

    def sparse_batch(start, n, labels):
        return Batch("m", np.array([f"e{i}" for i in range(start, start + n)], dtype=object),
                     1.7e9 + np.arange(start, start + n) / 100.0, {"coupon": CategoricalArray.from_labels(labels)})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(sparse_batch(0, 40_000, coupons(40_000, 1_000)))
    fired = [a for a in mon.process(sparse_batch(40_000, 100_000, coupons(100_000, 100_000))) if a.status == "firing"]
    assert not fired, [a.message for a in fired]


def test_a_unit_slip_on_all_the_traffic_found_beyond_the_range_is_called_a_unit_change():
    """Cents from event 6,000 of a warm-up baseline: the lane beyond the range finds it first; the values past
    the range are only those above its end (their ratio is not near a power of ten); most of the run's values
    are there, so the median's ratio says the factor and the incident calls it a unit change."""
    rng = np.random.default_rng(5)
    amount = np.round(np.exp(rng.normal(3.0, 1.0, 8000)), 2)
    amount[6000:] *= 100
    mon = Monitor(MonitorConfig.model_validate({"default": {"warmup_events": 4000}}))
    fired = [a for a in mon.process(batch(0, 8000, amount, ["FR"] * 8000)) if a.status == "firing"]
    assert fired and fired[0].detector == "shape" and fired[0].row - 6000 < 10, [a.message for a in fired]
    causes = [a.incident["cause"] for a in mon.take_incidents("m") if a.incident]
    assert causes and causes[0].startswith("one upstream column changed units: x (about x"), causes


def test_a_unit_slip_on_part_of_the_traffic_is_said_with_its_factor_and_called_a_unit_change():
    """Amounts in cents on 8 % of the events: the median does not move, the values beyond the reference's
    range say x100, and the incident's cause is a unit change."""
    rng = np.random.default_rng(33)
    mon = Monitor(MonitorConfig())
    amounts = rng.lognormal(3.0, 0.3, 30_000)
    mon.fit_reference(batch(0, 20_000, amounts[:20_000], ["US"] * 20_000))
    live = amounts[20_000:].copy()
    slipped = np.flatnonzero(rng.random(10_000) < 0.08)
    live[slipped[slipped >= 5_000]] *= 100
    alerts = mon.process(batch(0, 10_000, live, ["US"] * 10_000))
    fired = [a for a in alerts if a.status == "firing" and a.kind != "incident"]
    assert fired and fired[0].feature == "x", [a.message for a in alerts]
    said = re.search(r"about x([\d.]+) the reference median", fired[0].message)
    assert said and 70 < float(said.group(1)) < 140, fired[0].message
    causes = [a.incident["cause"] for a in mon.take_incidents("m") if a.incident]
    assert causes and causes[0].startswith("one upstream column changed units: x (about x"), causes


def test_the_median_and_spread_in_the_words_are_those_since_the_change_not_of_the_values_that_crossed():
    """A weak shift (x1.15) is caught after hundreds of events; the median in the words is read over the
    events since the change (at most the last 512, through the reference's bins), not the last few values
    that made the crossing, which overstate it. A spread that doubles is said in the column's units."""
    rng = np.random.default_rng(34)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 40_000, rng.lognormal(6.0, 0.5, 40_000), ["US"] * 40_000))
    live = np.concatenate([rng.lognormal(6.0, 0.5, 10_000), rng.lognormal(6.0 + math.log(1.15), 0.5, 10_000)])
    fired = [a for a in mon.process(batch(0, 20_000, live, ["US"] * 20_000)) if a.status == "firing"]
    said = re.search(r"median ([\d,.]+) -> ([\d,.]+)", fired[0].message)
    before, after = (float(g.replace(",", "")) for g in said.groups())
    assert 1.05 < after / before < 1.3, fired[0].message

    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 40_000, rng.normal(50.0, 10.0, 40_000), ["US"] * 40_000))
    live = np.concatenate([rng.normal(50.0, 10.0, 10_000), rng.normal(50.0, 20.0, 10_000)])
    fired = [a for a in mon.process(batch(0, 20_000, live, ["US"] * 20_000)) if a.status == "firing"]
    said = re.search(r"spread widened: interquartile range ([\d,.]+) -> ([\d,.]+)", fired[0].message)
    assert said, fired[0].message
    before, after = (float(g) for g in said.groups())
    assert 12 < before < 15 and 1.5 < after / before < 2.6, fired[0].message


@pytest.mark.parametrize("seed, missing", [(2, 0.0), (3, 0.0), (2, 0.5), (4, 0.5)])
def test_a_shift_found_after_thousands_of_events_is_said_by_its_whole_run_not_its_last_excursion(seed, missing):
    """A shift of 0.08 SD is found after thousands of events, longer than the codes a column carries: the
    median in the words comes from the lane's estimate over the whole run (about the shift), not from the
    last few hundred values, whose excursion made the crossing (they said two to four times the shift); with
    half the values missing too (a missing value adds nothing to the lane: the run's present share counts)."""
    rng = np.random.default_rng(40 + seed)

    def holes(x):
        x[rng.random(len(x)) < missing] = np.nan
        return x

    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, holes(rng.normal(0.0, 1.0, 20_000)), ["US"] * 20_000))
    fired = []
    for k in range(12):
        live = holes(rng.normal(0.08, 1.0, 10_000))
        fired += [a for a in mon.process(batch(10_000 * k, 10_000, live, ["US"] * 10_000)) if a.status == "firing"]
    said = re.search(r"median (-?[\d.]+) -> (-?[\d.]+) over the last ~(\d+) events", fired[0].message)
    assert said and int(said.group(3)) > 512, fired[0].message
    before, after = (float(g) for g in said.groups()[:2])
    assert 0.05 < after - before < 0.13, fired[0].message  # (the shift: 0.08; before, 0.14 and 0.20)


def test_a_spread_that_widens_while_the_median_moves_says_both():
    """The spread doubles and the median moves by half an SD: the spread's lane crosses first; its words say the
    median moved too (before: only "interquartile range 2.71 -> 4.65", the shift unsaid)."""
    rng = np.random.default_rng(0)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, rng.normal(10.0, 2.0, 20_000), ["US"] * 20_000))
    fired = [a for a in mon.process(batch(0, 10_000, rng.normal(11.0, 4.0, 10_000), ["US"] * 10_000))
             if a.status == "firing"]
    said = re.search(r"spread widened: .*; median ([\d.]+) -> ([\d.]+)", fired[0].message)
    assert fired[0].detector == "scale" and said, fired[0].message
    assert 10.3 < float(said.group(2)) < 13.0, fired[0].message


def test_a_daily_cycle_with_bursts_that_the_reference_holds_twice_stays_quiet():
    """A load that follows the day, and bursts of 100 events in one millisecond (0.3 % of the time steps):
    the nights' peaks of evidence vary with their bursts more than by a quarter, so a threshold of 1.25 times
    the reference's highest peak was crossed within four days; 1.5 times holds."""
    day = 86_400.0

    def days(first, count, seed):
        rng = np.random.default_rng(seed)
        steps = np.arange(first * day, (first + count) * day, 8.0)
        times = np.repeat(steps, np.where(rng.random(len(steps)) < 0.003, 100, 1))
        load = rng.normal(10 + 5 * np.sin(2 * np.pi * times / day), 2)
        return Batch("m", np.array([f"e{i}" for i in range(len(times))], dtype=object), 1.7e9 + times,
                     {"load": NumericArray(load)})

    mon = Monitor(MonitorConfig())
    for seed in (20, 50, 80):  # (each gave one or two false alarms before)
        mon = Monitor(MonitorConfig())
        mon.fit_reference(days(0, 2, seed))
        assert [a.message for a in mon.process(days(2, 4, seed + 1))] == []


def test_a_column_whose_labels_are_mostly_new_in_its_reference_s_second_half_is_open_ended():
    """Addresses, say: nine events in ten carry a label that comes back once or twice within the next hundred
    events and never again, one in ten one of 50 common labels. Most labels the reference saw come more than
    once, so Good-Turing (labels seen once) says about a sixth of live events are new, where nine in ten are;
    the reference's second half says so: new labels are the norm there, not news."""
    rng = np.random.default_rng(36)

    def addresses(start, n):
        labels = np.empty(n, dtype=object)
        common = rng.random(n) < 0.1
        labels[common] = [f"c{k}" for k in rng.integers(0, 50, common.sum())]
        for i in np.flatnonzero(~common):
            if labels[i] is None:
                labels[i] = f"a{start + i}"
                for j in i + rng.integers(1, 100, rng.integers(0, 3)):
                    if j < n and not common[j] and labels[j] is None:
                        labels[j] = labels[i]
        return Batch("m", np.array([f"e{i}" for i in range(start, start + n)], dtype=object),
                     1.7e9 + np.arange(start, start + n) / 100.0, {"address": CategoricalArray.from_labels(list(labels))})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(addresses(0, 12_000))  # (about 6,500 labels: under the 10,000 that make a column open-ended)
    assert mon.models["m"].roles.get("address") != "identifier"
    assert [a.message for a in mon.process(addresses(1_000_000, 40_000))] == []


def test_a_wrong_type_that_keeps_coming_back_now_and_then_pages_a_few_times_not_at_each_return():
    """A bare ``NaN`` about once in 15,000 events, for 300,000 events: each return after the quiet spell
    doubles it, so the column pages a few times where it paged at each return after 10,000 quiet events (7
    times here)."""
    from inferwatch.detectors.type_changes import TypeChanges

    rng = np.random.default_rng(37)
    rows = np.cumsum(rng.exponential(15_000, 20)).astype(np.int64)
    rows = rows[rows < 300_000]
    changes, fired = TypeChanges(), 0
    for start in range(0, 300_000, 10_000):
        mine = rows[(rows >= start) & (rows < start + 10_000)] - start
        found = changes.observe({"price": (mine, "expected a number, got NaN")} if len(mine) else {}, 10_000, start)
        fired += sum(f.action == "fire" for f in found)
        changes = TypeChanges.from_dict(changes.to_dict())
    assert len(rows) >= 15 and 1 <= fired <= 5, (len(rows), fired)
    # another kind of wrong value is news at once: a NaN as usual, then every value a string
    changes.observe({"price": (np.array([0]), "expected a number, got NaN")}, 2_000, 300_000)
    found = changes.observe({"price": (np.arange(10_000), "expected a number, got a string")}, 10_000, 302_000)
    assert ("fire", 0) in [(f.action, f.row) for f in found], found


def test_the_examples_of_new_labels_are_from_the_detector_s_run_not_from_long_before():
    """Two one-off labels the reference never saw, thousands of events before a new country comes in at 5 %:
    the alert's examples name the new country only."""
    rng = np.random.default_rng(38)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(stream(rng, 20_000, 0))
    labels = np.array(rng.choice(["US", "DE", "FR"], 15_000, p=[0.6, 0.3, 0.1]), dtype=object)
    labels[3_000], labels[5_000] = "XK", "AQ"
    labels[10_000:][rng.random(5_000) < 0.05] = "BR"
    x, config, state = rng.normal(size=15_000), MonitorConfig(), mon.to_bytes()
    for cut in (15_000, 10_050, 5_000):  # (a batch that begins inside the run carries the labels before it)
        mon, fired = Monitor.from_bytes(state, config), []
        for lo in range(0, 15_000, cut):
            fired += [a for a in mon.process(batch(lo, min(cut, 15_000 - lo), x[lo:lo + cut], labels[lo:lo + cut]))
                      if a.status == "firing"]
            mon = Monitor.from_bytes(mon.to_bytes(), config)
        assert [(a.feature, a.detector) for a in fired] == [("country", "new_category")]
        assert "(e.g. 'BR')" in fired[0].message, (cut, fired[0].message)


def test_a_new_label_flooding_an_i_i_d_long_tail_is_caught_at_once():
    """A Zipf column of 2,000 labels, drawn independently: Good-Turing on the whole reference says how often
    new labels come (about 2.5 %); the share new in the reference's second half (after only half of it) is
    about twice that and must not be taken for it, or a label never seen taking 15 % of the events is missed."""
    rng = np.random.default_rng(39)
    names = np.array([f"L{k}" for k in range(2000)], dtype=object)
    p = np.arange(1, 2001) ** -1.1
    p /= p.sum()

    def events(start, labels):
        return Batch("m", np.array([f"e{i}" for i in range(start, start + len(labels))], dtype=object),
                     1.7e9 + np.arange(start, start + len(labels)) / 100.0,
                     {"c": CategoricalArray.from_labels(list(labels))})

    mon = Monitor(MonitorConfig())
    mon.fit_reference(events(0, rng.choice(names, 20_000, p=p)))
    live = rng.choice(names, 30_000, p=p)
    live[20_000:][rng.random(10_000) < 0.15] = "NEW"
    fired = [a for a in mon.process(events(0, live)) if a.status == "firing"]
    assert [(a.feature, a.detector) for a in fired] == [("c", "new_category")], [a.message for a in fired]
    assert 20_000 <= fired[0].row < 20_500


def test_a_tail_label_that_vanishes_is_named_whatever_the_batch_cuts():
    """The most frequent label past the top stops: its group's alert names it, with any batch cuts and saved
    states (before: the group's most frequent label in the batch that fired, a different one for each cut)."""
    rng = np.random.default_rng(40)
    names = np.array([f"P{k:03d}" for k in range(400)], dtype=object)
    p = np.arange(1, 401) ** -1.0
    p /= p.sum()
    gone = names[16]

    def events(start, n, vanish=False):
        labels = rng.choice(names, n, p=p)
        if vanish:
            labels[labels == gone] = rng.choice(names[:16], int(np.sum(labels == gone)))
        return Batch("m", np.array([f"e{i}" for i in range(start, start + n)], dtype=object),
                     1.7e9 + np.arange(start, start + n) / 100.0, {"code": CategoricalArray.from_labels(list(labels))})

    reference, change = events(0, 30_000), 20_000
    stream = concat_batches([events(0, change), events(change, 30_000, vanish=True)])
    runs = [_group_firings(reference, stream, cut) for cut in (1_000, 7_777, 60_000)]
    assert runs[0] and runs[0][0][0] >= change and "fell" in runs[0][0][1], runs[0]
    assert f"(led by {gone!r})" in runs[0][0][1], runs[0][0][1]
    assert runs[0] == runs[1] == runs[2]


def test_values_just_past_the_reference_s_largest_are_not_called_a_unit_change():
    """A heavy-tailed amount (lognormal, sigma 1.5) gets 3 % of values at 1.2 to 3 times its reference's
    largest: a change, found, but its ratio to the median (whatever it is) is no unit slip."""
    rng = np.random.default_rng(41)
    ref = rng.lognormal(3.0, 1.5, 20_000)
    live = rng.lognormal(3.0, 1.5, 10_000)
    spike = np.flatnonzero(rng.random(10_000) < 0.03)
    spike = spike[spike >= 5_000]
    live[spike] = ref.max() * rng.uniform(1.2, 3.0, len(spike))
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, ref, ["US"] * 20_000))
    fired = [a for a in mon.process(batch(0, 10_000, live, ["US"] * 10_000)) if a.status == "firing"]
    assert fired and fired[0].feature == "x"
    causes = [a.incident["cause"] for a in mon.take_incidents("m") if a.incident]
    assert causes and not any("units" in c for c in causes), causes


def test_the_median_of_a_count_is_a_whole_number():
    """A count's bins hold whole numbers: the median since a change is read as one, not interpolated inside
    the bin of one value (before: "median 3.00 -> 3.71" where it was 3)."""
    from inferwatch.detectors.coding import NumericCodebook

    rng = np.random.default_rng(42)
    book = NumericCodebook.from_reference(rng.poisson(3.0, 40_000).astype(float))
    codes = book.encode(NumericArray(rng.poisson(3.4, 2_000).astype(float)))
    assert book.quantile_of(codes, 0.5) == 3.0


@pytest.mark.parametrize("stuck", [0.412873, None])
def test_a_column_stuck_on_one_value_is_said_to_be(stuck):
    """A score that becomes one constant (a model or a feed stuck: six decimals, inside its range) is found
    by its bins and said to be stuck at that value; a shift of the same column is not called stuck."""
    rng = np.random.default_rng(31)
    countries = rng.choice(["US", "DE"], 60_000).astype(object)
    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, rng.normal(0, 1, 20_000), countries[:20_000]))
    x = rng.normal(0, 1, 40_000)
    x[20_000:] = stuck if stuck is not None else x[20_000:] + 1.0
    fired = [a for a in mon.process(batch(0, 40_000, x, countries[20_000:])) if a.status == "firing"]
    assert fired and fired[0].feature == "x" and fired[0].row >= 20_000
    assert ("(stuck at 0.413: its last 24 values)" in fired[0].message) == (stuck is not None), fired[0].message


def test_stuck_is_said_past_the_baseline_s_runs_of_rare_values_only():
    """Half of a column's baseline is 0 in long runs (a count, a default); its runs of 0 do not raise the bar
    for a value of its rare bins: a score stuck at 20.1 is still said to be."""
    rng = np.random.default_rng(12)
    countries = rng.choice(["US", "DE"], 60_000).astype(object)

    def values(n):
        x = rng.gamma(4.0, 5.0, n)
        x[(np.arange(n) // 25) % 2 == 0] = 0.0  # runs of 25 zeros
        return x

    mon = Monitor(MonitorConfig())
    mon.fit_reference(batch(0, 20_000, values(20_000), countries[:20_000]))
    x = values(40_000)
    x[20_000:] = 20.123457
    fired = [a for a in mon.process(batch(0, 40_000, x, countries[20_000:])) if a.status == "firing"]
    assert fired and "(stuck at 20.1: its last" in fired[0].message, fired[0].message  # (3 significant digits)
