"""Delayed labels joined to predictions; realized and estimated performance, with calibrated alerts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from inferwatch.detectors.config import MonitorConfig
from inferwatch.streams.labels import LabelFeed, PerformanceWatch
from inferwatch.streams.replay import replay_file
from inferwatch.testing.labelled import labelled


def run(events: Path, labels: Path, config: MonitorConfig | None = None) -> tuple[list[dict], list[str]]:
    out = events.parent / "alerts.jsonl"
    with open(out, "wb") as f:
        summary = replay_file(events, config or MonitorConfig(), f, labels=labels)
    return [orjson.loads(line) for line in out.read_bytes().splitlines()], summary.labels


def performance(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if a["kind"] == "performance"]


def test_concept_drift_is_caught_from_the_labels_alone(tmp_path):
    """Inputs and scores unchanged; from event 30,000 on, 10 % of the labels flipped: the realized error rate
    rises (about 18 % to 26 %) and an error_rate alert fires, after the labels of the change arrived."""
    events, labels = labelled(tmp_path, change=30_000, flip=0.10)
    alerts, said = run(events, labels)
    fired = [a for a in performance(alerts) if a["detector"] == "error_rate" and a["status"] == "firing"]
    assert fired, alerts
    first = fired[0]
    assert first["feature"] == "prediction" and first["model"] == "churn"
    assert first["event_id"] == f"e{first['position']}"  # the prediction's
    assert 30_000 <= first["position"] < 36_000  # the prediction's line, soon after the change
    assert "error rate rose from 18" in first["message"]
    assert not [a for a in alerts if a["kind"] == "drift" and a["status"] == "firing"]  # the inputs did not move
    assert said[0].startswith("labels: 60,000 joined, 0 predictions expired")


def test_no_change_no_performance_alert_and_the_estimate_is_trusted(tmp_path):
    events, labels = labelled(tmp_path, n=80_000)
    alerts, said = run(events, labels)
    assert performance(alerts) == []
    assert "the scores look calibrated" in said[-1] and "median 2.0 min" in said[1], said


def test_moving_into_the_unsure_region_is_estimated_before_any_label(tmp_path):
    """x squeezed towards 0 from event 30,000: the scores crowd near 0.5; the label-free estimate fires
    although every label comes a day late (after the stream's end)."""
    events, labels = labelled(tmp_path, change=30_000, squeeze=0.4, delay=86_400.0)
    alerts, _ = run(events, labels)
    estimated = [a for a in performance(alerts) if a["detector"] == "estimated_error_rate"
                 and a["status"] == "firing"]
    assert estimated and 30_000 <= estimated[0]["position"] < 33_000, performance(alerts)


def test_labels_wait_at_most_max_delay_and_the_rest_is_counted(tmp_path):
    """Labels 2 minutes late, a horizon of one minute: every prediction expires unlabelled, said in the summary."""
    events, labels = labelled(tmp_path, n=20_000)
    config = MonitorConfig.model_validate({"default": {"labels": {"max_delay": "1m"}}})
    alerts, said = run(events, labels, config)
    assert said[0].startswith("labels: 0 joined, 20,000 predictions expired"), said
    assert performance([a for a in alerts if a["detector"] == "error_rate"]) == []


def test_a_label_before_its_prediction_waits_for_it():
    config = MonitorConfig()
    watch = PerformanceWatch(config, LabelFeed.from_lines([
        b'{"event_id": "a", "model": "m", "timestamp": 100, "label": 1}',
        b'{"event_id": "b", "model": "m", "timestamp": 100, "label": 0}',
        b'not json',
        b'{"event_id": "d", "model": "m", "timestamp": 100, "label": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ]))
    assert watch.arrive(150.0) == [] and watch.counts.joined == 0  # no prediction yet: the labels wait
    from inferwatch.detectors.types import Batch, NumericArray

    batch = Batch("m", ["a", "c"], np.array([160.0, 161.0]), {"prediction": NumericArray(np.array([0.9, 0.2]))})
    watch.predictions(batch, np.array([0, 1]))
    watch.finish()
    # the line that is not JSON and the one nested too deeply are counted, not fatal
    assert (watch.counts.joined, watch.counts.waiting, watch.counts.orphaned, watch.counts.unreadable) == (1, 1, 1, 2)


def test_the_cli_takes_labels_and_says_what_was_joined(tmp_path):
    events, labels = labelled(tmp_path, n=5_000)
    config = tmp_path / "monitor.yaml"
    config.write_text("default:\n  warmup_events: 2000\n")  # a baseline completes: the run watched something
    res = subprocess.run([sys.executable, "-m", "inferwatch", "replay", "--file", str(events), "--labels", str(labels),
                          "--config", str(config)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "labels: 5,000 joined" in res.stderr


def test_reference_labels_inline_give_the_baseline_at_once(tmp_path):
    """The reference carries its labels inline: the realized error rate is watched from the first label on
    (no warm-up of 10,000 labelled predictions), so a change early in the stream is caught."""
    ref_dir, stream_dir = tmp_path / "ref", tmp_path / "stream"
    ref_dir.mkdir()
    stream_dir.mkdir()
    ref_events, ref_labels = labelled(ref_dir, n=30_000, seed=5)
    label_of = {r["event_id"]: r["label"] for r in map(orjson.loads, ref_labels.read_bytes().splitlines())}
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"".join(orjson.dumps({**e, "label": label_of[e["event_id"]]}) + b"\n"
                                   for e in map(orjson.loads, ref_events.read_bytes().splitlines())))
    events, labels = labelled(stream_dir, n=12_000, change=2_000, flip=0.10)
    out = tmp_path / "alerts.jsonl"
    with open(out, "wb") as f:
        summary = replay_file(events, MonitorConfig(), f, reference=reference, labels=labels)
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    fired = [a for a in performance(alerts) if a["detector"] == "error_rate" and a["status"] == "firing"]
    assert fired and 2_000 <= fired[0]["position"] < 8_000, performance(alerts)
    assert "30,000 labelled predictions" in summary.labels[-1]


def test_labels_that_stop_coming_raise_a_coverage_alert(tmp_path):
    """Every label comes 2 minutes late until event 30,000; then none: once the predictions after the stop
    have waited max_delay (3 minutes), label_coverage fires (data_quality)."""
    events, labels = labelled(tmp_path, n=80_000)
    kept = [line for line in labels.read_bytes().splitlines() if int(orjson.loads(line)["event_id"][1:]) < 30_000]
    labels.write_bytes(b"\n".join(kept) + b"\n")
    config = MonitorConfig.model_validate({"default": {"labels": {"max_delay": "3m"}}})
    alerts, said = run(events, labels, config)
    fired = [a for a in alerts if a["detector"] == "label_coverage" and a["status"] == "firing"]
    assert fired and fired[0]["kind"] == "data_quality" and 30_000 <= fired[0]["position"] < 32_000, alerts
    assert fired[0]["event_id"] == f"e{fired[0]['position']}"
    assert [a for a in alerts if a["kind"] == "performance"] == []  # no label, no performance word


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_steady_share_of_labels_is_quiet_and_a_stop_is_still_caught(tmp_path, keep):
    """Half, or 99 %, of the predictions get a label (2 minutes late), max_delay 3 minutes: the coverage is
    steady (the first resolved predictions are all labelled: none could expire yet; they are not its
    baseline), so no alert; the labels stopping at prediction 40,000 raise label_coverage once the stream's
    clock shows it (predictions expiring and none labelled: about 18,000 predictions later at most)."""
    events, labels = labelled(tmp_path, n=80_000, keep=keep)
    config = MonitorConfig.model_validate({"default": {"labels": {"max_delay": "3m"}}})
    alerts, _ = run(events, labels, config)
    assert alerts == [], [a["message"] for a in alerts]
    kept = [line for line in labels.read_bytes().splitlines() if int(orjson.loads(line)["event_id"][1:]) < 40_000]
    labels.write_bytes(b"\n".join(kept) + b"\n")
    alerts, _ = run(events, labels, config)
    fired = [a for a in alerts if a["detector"] == "label_coverage" and a["status"] == "firing"]
    assert fired and 40_000 - 18_000 <= fired[0]["position"] < 40_000 + 18_000, alerts
    said = fired[0]["message"]
    assert said.startswith(("prediction: share of predictions left unlabelled rose",
                            "prediction: share of predictions labelled fell")), said


def test_a_regression_whose_error_grows_raises_abs_error(tmp_path):
    events, labels = labelled(tmp_path, n=40_000, change=20_000, regression=True, noise=2.0)
    alerts, _ = run(events, labels)
    fired = [a for a in performance(alerts) if a["detector"] == "abs_error" and a["status"] == "firing"]
    assert fired and 20_000 <= fired[0]["position"] < 21_000, performance(alerts)
    assert not [a for a in performance(alerts) if a["detector"].startswith("estimated")]  # not a probability


def _levels(alert: dict) -> tuple[float, float]:
    """The (before, now) a mean metric's message gives."""
    import re

    found = re.search(r"from (-?[0-9.]+) to about (-?[0-9.]+) over", alert["message"])
    assert found, alert["message"]
    return float(found.group(1)), float(found.group(2))


def test_concept_drift_moves_every_classifier_metric_and_the_words_give_their_levels(tmp_path):
    """10 % of the labels flipped from prediction 30,000: log loss, Brier score, overconfidence, precision and
    recall each fire after the change and not before, log loss and Brier said rising from their level."""
    events, labels = labelled(tmp_path, n=60_000, change=30_000, flip=0.10)
    alerts, _ = run(events, labels)
    fired = {}
    for a in performance(alerts):
        if a["status"] == "firing":
            fired.setdefault(a["detector"], a)
    assert {"error_rate", "log_loss", "brier", "overconfidence", "precision", "recall"} <= set(fired), fired
    assert all(30_000 <= a["position"] < 40_000 for a in fired.values()), fired
    for metric in ("log_loss", "brier", "overconfidence"):
        before, now = _levels(fired[metric])
        assert now > before and " rose from " in fired[metric]["message"], fired[metric]["message"]
    assert " fell from " in fired["precision"]["message"] and fired["precision"]["kind"] == "performance"


def test_a_model_that_turns_overconfident_is_caught_by_its_calibration(tmp_path):
    """Labels unchanged, scores sharpened from prediction 20,000: overconfidence rises from about 0."""
    events, labels = labelled(tmp_path, n=40_000, change=20_000, sharpen=True)
    alerts, _ = run(events, labels)
    fired = [a for a in performance(alerts) if a["detector"] == "overconfidence" and a["status"] == "firing"]
    assert fired and 20_000 <= fired[0]["position"] < 25_000, performance(alerts)
    before, now = _levels(fired[0])
    assert abs(before) < 0.02 and now > 0.03, fired[0]["message"]


def test_a_regression_that_drifts_high_raises_bias_and_only_the_metrics_asked_for(tmp_path):
    events, labels = labelled(tmp_path, n=40_000, change=20_000, regression=True, bias=0.5)
    alerts, _ = run(events, labels)
    fired = [a for a in performance(alerts) if a["detector"] == "bias" and a["status"] == "firing"]
    assert fired and 20_000 <= fired[0]["position"] < 21_000, performance(alerts)
    before, now = _levels(fired[0])
    assert abs(before) < 0.05 and 0.3 < now < 0.8, fired[0]["message"]
    only = MonitorConfig.model_validate({"default": {"labels": {"metrics": ["abs_error"]}}})
    alerts, _ = run(events, labels, only)
    assert {a["detector"] for a in performance(alerts)} == {"abs_error"}


def test_a_concept_drift_in_one_segment_is_named_by_its_segment(tmp_path):
    """Four regions in turn; from prediction 40,000 a fifth of the eu region's labels flip: an error_rate alert
    of the segment {"region": "eu"} fires after the change, none of another region (saved and read back: see
    the next tests)."""
    regions = ("eu", "us", "apac", "latam")
    events, labels = labelled(tmp_path, n=80_000, change=40_000, flip=0.20, regions=regions, flip_region="eu")
    config = MonitorConfig.model_validate({"default": {"segments": ["region"]}})
    alerts, _ = run(events, labels, config)
    fired = [a for a in performance(alerts) if a["status"] == "firing" and a["segment"] is not None]
    assert fired and {a["segment"]["region"] for a in fired} == {"eu"}, performance(alerts)
    first = min(fired, key=lambda a: a["position"])
    assert 40_000 <= first["position"] < 60_000 and first["position"] % 4 == 0, first  # an eu prediction
    loss = next(a for a in fired if a["detector"] == "log_loss")
    assert loss["message"].startswith("prediction [region=eu]: log loss rose from "), loss["message"]
    assert loss["feature"] == "prediction" and loss["segment"] == {"region": "eu"}
    before, now = _levels(loss)  # the segment's own levels: a fifth of its labels flipped, its loss near doubles
    assert now > 1.5 * before, loss["message"]
    assert not [a for a in performance(alerts) if a["status"] == "firing" and a["position"] < 40_000]


def test_labels_that_come_later_raise_a_label_delay_alert(tmp_path):
    """Labels 2 minutes after their prediction until prediction 20,000, then 10 minutes (from prediction 80,000
    on, the stream's clock reaches them): label_delay (data_quality) fires once the late ones arrive, naming the
    delays; no alert before."""
    events, labels = labelled(tmp_path, n=100_000, change=20_000, delay_after=600.0)
    alerts, _ = run(events, labels)
    fired = [a for a in alerts if a["detector"] == "label_delay" and a["status"] == "firing"]
    assert fired and fired[0]["kind"] == "data_quality" and 20_000 <= fired[0]["position"] < 21_000, alerts
    assert fired[0]["message"].startswith("prediction: label delay (seconds) median 120 -> 600"), fired[0]
    assert not [a for a in alerts if a["status"] == "firing" and a["position"] < 20_000]


def test_an_overconfident_model_is_said_not_calibrated_and_stays_quiet(tmp_path):
    events, labels = labelled(tmp_path, n=40_000, overconfident=True)
    alerts, said = run(events, labels)
    assert performance(alerts) == []
    assert "not calibrated: do not trust the estimate" in said[-1], said


def test_backtest_takes_labels_and_compares_the_configs_on_performance(tmp_path):
    """Two configs over a concept drift: the longer warm-up still catches it; both see the same join."""
    from inferwatch.streams.backtest import backtest, difference_rows

    events, labels = labelled(tmp_path, n=40_000, change=20_000, flip=0.10)
    configs = [("default", MonitorConfig()),
               ("short", MonitorConfig.model_validate({"default": {"warmup_events": 5_000}}))]
    runs = backtest(configs, events, labels=labels)
    for run in runs:
        assert any(a["detector"] == "error_rate" and a["status"] == "firing" for a in run.alerts), run.name
    rows = dict(difference_rows(runs))
    assert rows["labels"][0] == rows["labels"][1] and rows["labels"][0].startswith("40,000 joined")
    from inferwatch.streams.report import write_report

    write_report(runs, tmp_path / "report.html", "labels")  # the report has the performance alerts of both
    page = (tmp_path / "report.html").read_text()
    performance = page[page.index("<h3>performance</h3>"):]
    assert "error rate rose" in performance and "<td>default</td>" in performance and "<td>short</td>" in performance
    assert "error rate: realized vs estimated" in page
    trace = runs[0].models["churn"].performance  # the concept drift: the realized error rises, the estimate does not
    before = np.nanmean(trace.realized[:len(trace.realized) // 2 - 2])
    after = np.nanmean(trace.realized[len(trace.realized) // 2 + 2:])
    assert after > before + 0.05 and abs(np.mean(trace.estimated[:20]) - np.mean(trace.estimated[-20:])) < 0.03


def test_numeric_event_ids_and_a_repeated_id_are_counted_right():
    from inferwatch.detectors.types import Batch, NumericArray

    watch = PerformanceWatch(MonitorConfig(), LabelFeed.from_lines([
        b'{"event_id": 7, "model": "m", "timestamp": 200, "label": 1}']))
    batch = Batch("m", ["7", "8", "8"], np.array([100.0, 101.0, 102.0]),
                  {"prediction": NumericArray(np.array([0.9, 0.2, 0.3]))})
    watch.predictions(batch, np.array([0, 1, 2]))
    watch.finish()
    c = watch.counts
    # "8" came twice: the later waits, and the first is counted sent again (not expired: its wait did not end)
    assert (c.unreadable, c.joined, c.expired, c.waiting, c.resent) == (0, 1, 0, 1, 1)


def test_a_label_given_twice_before_its_prediction_is_applied_once_and_the_other_counted():
    """Two labels for one id, both before the prediction (with a prediction of the model already seen, and
    before any): the first is applied, the second counted without its prediction; every label is counted."""
    from inferwatch.detectors.types import Batch, NumericArray

    for seen_before in (False, True):
        watch = PerformanceWatch(MonitorConfig(), LabelFeed.from_lines([
            b'{"event_id": "a", "model": "m", "timestamp": 10, "label": 1}',
            b'{"event_id": "a", "model": "m", "timestamp": 11, "label": 0}',
            b'{"event_id": "b", "model": "m", "timestamp": 12, "label": 0}']))
        if seen_before:
            watch.predictions(Batch("m", ["z"], np.array([5.0]), {"prediction": NumericArray(np.array([0.5]))}),
                              np.array([0]))
        watch.arrive(50.0)
        batch = Batch("m", ["a", "b"], np.array([100.0, 101.0]), {"prediction": NumericArray(np.array([0.9, 0.2]))})
        watch.predictions(batch, np.array([1, 2]))
        applied = [label for _, labels, _ in watch.joins["m"].joined for label in labels]
        watch.finish()
        c = watch.counts
        assert (c.joined, c.orphaned, applied) == (2, 1, [1, 0]), seen_before


def _steps(pipe, lines: list[bytes], chunk: int, feed_labels=None, reload=None) -> list[dict]:
    """Alert records of ``pipe`` over ``lines`` in steps of ``chunk``; ``feed_labels(clock)`` gives the labels
    known by then (a live worker's merge); ``reload(pipe)`` replaces the pipeline between steps."""
    out = []
    for first in range(0, len(lines), chunk):
        part = lines[first:first + chunk]
        if feed_labels is not None:
            pipe.performance.feed.append(feed_labels(orjson.loads(part[-1])["timestamp"]))
        out += [a.to_record(i) for i, a in pipe.step(part, first).alerts]
        if reload is not None:
            pipe = reload(pipe)
    if feed_labels is not None:
        pipe.performance.feed.append(feed_labels(None))
    return out + [a.to_record(i) for i, a in pipe.finish_labels().alerts]


def _as_first_release(saved: bytes) -> bytes:
    """A label join's state as inferwatch 0.2's first labels saved it: each pending prediction a list
    [time, place, *values] under its event id."""
    import msgspec

    raw = msgspec.msgpack.decode(saved)
    for join in raw["joins"].values():
        w = join["waiting"] or {"ids": [], "times": b"", "places": b"", "values": []}
        times, places = np.frombuffer(w["times"], "<f8").tolist(), np.frombuffer(w["places"], "<i8").tolist()
        join["waiting"] = {k: [t, p, *(v[i] for v in w["values"])]
                           for i, (k, t, p) in enumerate(zip(w["ids"], times, places))}
        join["joined"], join["resolved"] = [], []
    raw["delays"] = np.full(3, 120.0, dtype="<f8").tobytes()  # the latest label delays themselves, then
    del raw["delay_sketch"]
    raw["version"] = 1
    return msgspec.msgpack.encode(raw)


@pytest.mark.parametrize("segmented, first_release, settle", [
    (False, False, False), (True, False, False), (False, True, False), (False, False, True)])
def test_the_label_join_saved_and_read_back_between_steps_gives_the_same_alerts(tmp_path, segmented, first_release,
                                                                                settle):
    """A live worker's detect stage: labels appended as its merge releases them, the pipeline (and its label
    join) saved to parts and read back after every step. Same alerts as one replay with the whole labels file
    (segmented: with a concept drift in one region, whose own alerts come through the saves too; first_release:
    every state read back is in the format of the first release with labels; settle: with labels.settle, the
    pairs it holds are saved too)."""
    from inferwatch.streams.pipeline import PERFORMANCE_FIELD, Pipeline

    if settle:
        events, labels = labelled(tmp_path, change=30_000, flip=0.10, delay=30.0, negatives_delay=300.0,
                                  intercept=1.5)
        config = MonitorConfig.model_validate({"default": {"labels": {"settle": "6m"}}})
    elif segmented:
        events, labels = labelled(tmp_path, n=80_000, change=40_000, flip=0.20, regions=("eu", "us", "apac", "latam"),
                                  flip_region="eu")
        config = MonitorConfig.model_validate({"default": {"segments": ["region"]}})
    else:
        events, labels = labelled(tmp_path, change=30_000, flip=0.10)
        config = MonitorConfig()
    lines = events.read_bytes().splitlines()
    straight = Pipeline.build(config, lines[:1000])
    straight.performance = PerformanceWatch(config, LabelFeed.from_file(labels))
    want = _steps(straight, lines, 7_000)
    assert [a for a in want if a["kind"] == "performance" and a["status"] == "firing"]
    assert bool([a for a in want if a["kind"] == "performance" and a["segment"]]) == segmented

    label_lines = labels.read_bytes().splitlines()
    label_times = LabelFeed.from_lines(label_lines).times  # the file is in label-time order
    given = [0]

    def released(clock):
        hi = len(label_lines) if clock is None else int(np.searchsorted(label_times, LabelFeed.from_lines(
            [orjson.dumps({"event_id": "x", "model": "m", "timestamp": clock, "label": 0})]).times[0], "right"))
        out, given[0] = label_lines[given[0]:hi], hi
        return out

    stored: dict[str, bytes] = {}

    def reload(pipe):
        head, fields = pipe.to_parts()
        assert PERFORMANCE_FIELD in fields
        if first_release:
            fields[PERFORMANCE_FIELD] = _as_first_release(fields[PERFORMANCE_FIELD])
        stored.update(fields)
        return Pipeline.from_parts(head, stored, config)

    live = Pipeline.build(config, lines[:1000])
    live.performance = PerformanceWatch(config, LabelFeed.empty())
    assert _steps(live, lines, 7_000, released, reload) == want


def test_the_saved_label_join_does_not_grow_with_the_labels_joined(tmp_path):
    """A live worker rewrites the join's state with every batch: what it holds must not grow with the stream
    (the label delays are a quantile sketch, not the delays themselves)."""
    from inferwatch.streams.pipeline import PERFORMANCE_FIELD, Pipeline

    events, labels = labelled(tmp_path, n=120_000)
    lines, config = events.read_bytes().splitlines(), MonitorConfig()
    label_lines = labels.read_bytes().splitlines()
    label_times = LabelFeed.from_lines(label_lines).times
    pipe = Pipeline.build(config, lines[:1000])
    pipe.performance = PerformanceWatch(config, LabelFeed.empty())
    sizes, given = {}, 0
    for first in range(0, len(lines), 10_000):
        pipe.step(lines[first:first + 10_000], first)
        known = int(np.searchsorted(label_times, pipe.last_time, "right"))  # as a live worker's labels come
        pipe.performance.feed.append(label_lines[given:known])
        given = known
        sizes[first + 10_000] = len(pipe.to_parts()[1][PERFORMANCE_FIELD])
    assert pipe.performance.counts.joined > 90_000
    assert sizes[120_000] < 1.2 * sizes[40_000], sizes  # (past the warm-up's calibration sample)
    assert "median 2.0 min" in " ".join(pipe.performance.summary())


def test_labels_beside_are_read_to_the_events_time_and_not_far_past_it():
    """The rule of a one-partition worker's labels consumer (no broker needed to ask it): labels behind the
    events' time are always wanted; at least as many as the events while not ahead of them by two of their
    steps; none once that far ahead, whatever the count."""
    from inferwatch.streams.labels_beside import AHEAD, LabelsBeside

    beside = LabelsBeside("labels", 1, {"bootstrap.servers": "127.0.0.1:9", "group.id": "test"})
    try:
        beside.span = 200.0  # the events' last step, in seconds of event time
        beside.latest = 900.0
        assert beside._wanted(n=10_000, events=5_000, clock=1_000.0)  # behind the events: more
        beside.latest = 1_100.0
        assert beside._wanted(n=4_000, events=5_000, clock=1_000.0)  # ahead, but fewer than the events
        assert not beside._wanted(n=5_000, events=5_000, clock=1_000.0)  # as many as the events: enough
        beside.latest = 1_000.0 + AHEAD * 200.0
        assert not beside._wanted(n=0, events=5_000, clock=1_000.0)  # far ahead (sparse labels): no more
        beside.span = 0.0  # no step known yet (the first batch): the count decides
        assert beside._wanted(n=0, events=5_000, clock=1_000.0)
    finally:
        beside.close()


@pytest.mark.integration
def test_labels_beside_see_the_end_of_a_transactional_labels_topic(services):
    """Labels written in a transaction: the topic's end offset is one past the last label (the commit mark),
    so the end must be the one librdkafka reports, or the worker would wait for labels at every fetch."""
    from confluent_kafka import Producer

    from inferwatch.streams.labels_beside import LabelsBeside
    from inferwatch.testing.services import create_topic, unique, wait_until

    bootstrap = services["KAFKA_BOOTSTRAP_SERVERS"]
    topic = unique("labels-tx")
    create_topic(bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("tx")})
    producer.init_transactions(30)

    def transaction(first: int, n: int) -> None:
        producer.begin_transaction()
        for i in range(first, first + n):
            producer.produce(topic, orjson.dumps({"event_id": f"e{i}", "model": "m", "timestamp": 1_000 + i,
                                                  "label": i % 2}))
        producer.commit_transaction(30)

    transaction(0, 100)
    beside = LabelsBeside(topic, 1, {"bootstrap.servers": bootstrap, "group.id": unique("beside")})
    try:
        beside.assign({})
        read: list[int] = []

        def all_read(n: int) -> bool:
            for offsets, _, feeds in beside.take(100, float("-inf")).values():
                read.extend(offsets)
                assert sum(len(f.times) for f in feeds) == len(offsets)  # each value read as a label
            return len(read) == n and beside.at_end()

        wait_until(lambda: all_read(100), 30, "every label read and the labels partition's end seen", 0.05)
        assert read == list(range(100)) and beside.ends[0] == 101  # the end offset counts the commit mark
        transaction(100, 50)  # labels that come after the end was seen are read too
        wait_until(lambda: all_read(150), 30, "the later labels read and the new end seen", 0.05)
        assert read == list(range(100)) + list(range(101, 151)) and beside.ends[0] == 152
    finally:
        beside.close()


def test_re_sent_events_are_one_data_quality_alert_not_a_performance_one(tmp_path):
    """A producer that re-sends 3 % of its events from event 30,000 on: the model's ``event_id.repeat``
    says so once; the performance monitors (which see the same predictions) watch their metrics only, not
    the predictions' ids nor a metric's decimals."""
    events, labels = labelled(tmp_path, n=60_000)
    lines = events.read_bytes().splitlines()
    rng = np.random.default_rng(1)
    resent = []
    for i, line in enumerate(lines):
        resent.append(line)
        if i >= 30_000 and rng.random() < 0.03:
            resent.append(lines[i - int(rng.integers(1, 200))])
    events.write_bytes(b"\n".join(resent) + b"\n")
    alerts, _ = run(events, labels)
    fired = [(a["kind"], a["feature"]) for a in alerts if a["status"] == "firing" and a["kind"] != "incident"]
    assert fired == [("data_quality", "event_id.repeat")], fired


def test_a_batch_of_label_feeds_is_added_in_one_step_in_time_order():
    """A worker reads a batch's labels as several feeds (one a consume call): added together, they keep the
    labels not given out yet, are sorted where they came out of order, and count the unreadable ones."""
    def label(i: int, second: int) -> bytes:
        return orjson.dumps({"event_id": f"e{i}", "model": "m", "label": i % 2 == 0,
                             "timestamp": f"2026-11-01T00:00:{second:02d}Z"})

    feed = LabelFeed.from_lines([label(0, 1), label(1, 2)])
    assert feed.until(LabelFeed.from_lines([label(9, 1)]).times[0]) == (0, 1)  # e0 given out, e1 not yet
    first, second = LabelFeed.from_lines([label(2, 5), b"{}"]), LabelFeed.from_lines([label(3, 3), b"[1"])
    assert feed.add(first, second) == 2
    assert feed.ids == ["e1", "e3", "e2"] and feed.labels == [False, False, True]
    assert np.all(np.diff(feed.times) > 0) and feed.unreadable == 2 and feed.sent == 0


@pytest.mark.parametrize("shape", [{"spread": True, "delay": 60.0}, {"early": 0.1}],
                         ids=["exponential delays", "a tenth known first"])
def test_label_delays_that_vary_or_come_first_raise_nothing_on_a_steady_stream(tmp_path, shape):
    """Delays exponential with a mean of a minute, or a tenth of the labels known 30 s before their prediction:
    the first delays seen are cut short by the clock, and the labels still to come at the end are the slowest
    ones; neither is a change in delay, coverage or performance."""
    events, labels = labelled(tmp_path, n=60_000, **shape)
    alerts, said = run(events, labels)
    assert alerts == [], [a["message"] for a in alerts]
    assert said[0].startswith("labels: 60,000 joined"), said


def test_regression_labels_written_as_text_and_ids_written_as_floats_are_read():
    """A regression label ``"51.5"`` is a number (it was a silent NaN: joined, never watched); an id ``7.0``
    (a table's export) is the event ``7``."""
    from inferwatch.detectors.performance import outcome_columns
    from inferwatch.detectors.types import Batch, NumericArray

    cols = outcome_columns(NumericArray(np.array([50.0, 60.0, 70.0])), ["51.5", 58, "n/a"], probability=False)
    assert np.allclose(cols["abs_error"].values[:2], [1.5, 2.0]) and np.isnan(cols["abs_error"].values[2])
    watch = PerformanceWatch(MonitorConfig(), LabelFeed.from_lines([
        b'{"event_id": 7.0, "model": "m", "timestamp": 200, "label": 1}']))
    watch.predictions(Batch("m", ["7"], np.array([100.0]), {"prediction": NumericArray(np.array([0.9]))}),
                      np.array([0]))
    watch.finish()
    assert (watch.counts.unreadable, watch.counts.joined) == (0, 1)


def test_with_settle_labels_whose_delay_depends_on_the_outcome_are_watched_in_prediction_order(tmp_path):
    """Positives labelled 30 s after their prediction, negatives 5 minutes after (a chargeback comes faster
    than the all-clear): watched as they come, the first labels are nearly all positives, and the error rate
    looks changed on a steady stream. With ``labels.settle: 6m`` the pairs are watched in prediction order:
    quiet, the scores said calibrated, and a concept drift is still caught after its change."""
    shape = {"n": 80_000, "delay": 30.0, "negatives_delay": 300.0, "intercept": 1.5}
    events, labels = labelled(tmp_path / "steady", **shape)
    assert performance(run(events, labels)[0])  # the limit settle is for
    config = MonitorConfig.model_validate({"default": {"labels": {"settle": "6m"}}})
    alerts, said = run(events, labels, config)
    assert alerts == [], [a["message"] for a in alerts]
    assert said[-1].endswith("the scores look calibrated"), said
    events, labels = labelled(tmp_path / "drift", change=40_000, flip=0.10, **shape)
    fired = [a for a in performance(run(events, labels, config)[0]) if a["status"] == "firing"]
    assert fired and min(a["position"] for a in fired) >= 40_000, fired


@pytest.mark.parametrize("shape", [{"n": 100_000, "change": 20_000, "delay_after": 600.0},
                                   {"n": 60_000, "change": 30_000, "flip": 0.10, "spread": True, "delay": 60.0},
                                   {"n": 60_000, "delay": 5.0, "negatives_delay": 200.0, "intercept": 1.5}],
                         ids=["labels come later", "concept drift, delays exponential", "negatives later"])
def test_the_same_labelled_stream_gives_the_same_alerts_whatever_the_batch_size(tmp_path, shape):
    """Batches of 1,000, 7,777 and the default: the same alerts (in an order that may differ; a score's last
    digit may too: the label lanes sum per batch), and each alert's position is its event's (e<position>)."""
    events, labels = labelled(tmp_path, **shape)
    found = []
    for size in (1_000, 7_777, None):
        config = MonitorConfig.model_validate({} if size is None else {"batch_size": size})
        alerts, _ = run(events, labels, config)
        assert alerts and all(a["event_id"] == f"e{a['position']}" for a in alerts if a["event_id"]), alerts
        found.append(sorted(orjson.dumps({**a, "score": round(a["score"], 4)}) for a in alerts))
    assert found[0] == found[1] == found[2]


def test_the_summary_counts_the_incidents_of_performance_alerts(tmp_path):
    """Performance alerts carry an incident id but no incident record: the summary's incidents count them
    (it said "in 0 incident(s)" under 18 performance alerts)."""
    events, labels = labelled(tmp_path, change=30_000, flip=0.10)
    with open(tmp_path / "alerts.jsonl", "wb") as f:
        summary = replay_file(events, MonitorConfig(), f, labels=labels)
    alerts = [orjson.loads(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    ids = {a["incident_id"] for a in alerts if a["incident_id"]}
    assert performance(alerts) and ids and summary.incidents == ids


def test_labels_delivered_in_batches_are_quiet_whatever_the_batch_size(tmp_path):
    """Exponential delays (mean 2 minutes), the labels delivered every 5 minutes (each label's time the next
    delivery), no change: the first deliveries show only short delays (the stream is young), then each
    delivery at once; the label delay starts only once a whole delivery is counted. Quiet, with and without
    labels.settle, in batches of 1,000 and the default."""
    events, labels = labelled(tmp_path, n=100_000, delay=120.0, spread=True, seed=7)
    delivered = []
    for line in labels.read_bytes().splitlines():
        label = orjson.loads(line)
        t = LabelFeed.from_lines([line]).times[0]
        label["timestamp"] = float(np.ceil(t / 300) * 300)
        delivered.append((label["timestamp"], orjson.dumps(label)))
    delivered.sort(key=lambda r: r[0])
    labels.write_bytes(b"\n".join(line for _, line in delivered) + b"\n")
    for settle in (None, "6m"):
        for size in (1_000, None):
            raw = {**({"default": {"labels": {"settle": settle}}} if settle else {}),
                   **({"batch_size": size} if size else {})}
            alerts, said = run(events, labels, MonitorConfig.model_validate(raw))
            assert alerts == [], (settle, size, [a["message"] for a in alerts])
