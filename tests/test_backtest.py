"""Backtest: configs compared on the same events; a report a browser renders."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inferwatch.testing.services import ROOT

DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"
CONFIGS = [ROOT / "examples" / "backtest" / "baseline.yaml", ROOT / "examples" / "backtest" / "candidate.yaml"]


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "inferwatch", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, **kw)


@pytest.fixture(scope="module")
def backtested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backtest")
    res = run("backtest", "--file", DEMO, "--config", CONFIGS[0], "--config", CONFIGS[1],
              "--report", tmp / "report.html", "--alerts-dir", tmp / "alerts")
    assert res.returncode == 0, res.stderr
    return tmp, res.stdout


def test_each_config_gets_the_alerts_of_its_own_replay(backtested):
    tmp, _ = backtested
    for config in CONFIGS:
        replayed = run("replay", "--file", DEMO, "--config", config)
        assert replayed.returncode == 0
        assert (tmp / "alerts" / f"{config.stem}.alerts.jsonl").read_text() == replayed.stdout


def test_the_table_shows_what_each_config_would_have_done(backtested, tmp_path):
    _, table = backtested
    assert "baseline" in table and "candidate" in table
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in table.splitlines() if line.count("│") == 4}
    assert rows["events"] == ["30,002", "30,002"]
    assert rows["card-fraud: events block"][0] == "0" and int(rows["card-fraud: events block"][1].replace(",", "")) > 0
    assert rows["card-fraud: first firing on amount"][0] == "line 7500 type_changed"  # "12,50": a string
    from inferwatch.streams.guard import Guard

    decisions = [d.to_dict() for d in Guard.from_config(CONFIGS[1]).check_batch(DEMO.read_bytes().splitlines())]
    blocked = sum(1 for d in decisions if d.get("action") == "block" and "error" not in d)
    assert rows["card-fraud: events block"][1] == f"{blocked:,}"


def test_report_renders_in_headless_chromium_without_script_errors(backtested):
    tmp, _ = backtested
    report = tmp / "report.html"
    page = report.read_text()
    assert not [tag for tag in page.split("<script")[1:] if tag.lstrip().startswith("src")]  # all inline
    browser = subprocess.run([str(ROOT / "scripts" / "browser")], capture_output=True, text=True, check=True,
                             timeout=900).stdout.strip()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=180).stdout
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    assert "data-errors" not in body, body
    assert 'data-plots="9"' in body, body  # one figure per monitored column, the two configs overlaid in it
    assert dom.count('class="main-svg"') >= 9
    # what changed, first: the columns that moved and the incident's likely cause, per config
    head = dom[dom.index("What changed"):dom.index("Configs compared")]
    assert head.count("card-fraud: 2 of 9 columns moved (amount, country) in 1 incident(s): one upstream column "
                      "changed units: amount") == 2
    # the moved columns come first, reference against current: amount's median went from ~20 to ~2,000
    amount = dom[dom.index("<h3>amount</h3>"):dom.index("<h3>country</h3>")]
    median = amount[amount.index("median"):]
    cells = [c.split("<")[0] for c in median.split("<td>")[1:3]]
    assert 10 < float(cells[0].replace(",", "")) < 40 and float(cells[1].replace(",", "")) > 1000
    assert dom.index("<h3>amount</h3>") < dom.index("<h3>age</h3>")
    shot = tmp / "report.png"
    subprocess.run([*flags, "--window-size=1400,2400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=180)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    (ROOT / "tests" / ".artifacts").mkdir(exist_ok=True)
    (ROOT / "tests" / ".artifacts" / "report.png").write_bytes(shot.read_bytes())


def test_a_bad_config_among_several_fails_before_any_event_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("default:\n  rules: [{kind: range, field: amount, action: flag}]\n")
    res = run("backtest", "--file", DEMO, "--config", CONFIGS[0], "--config", bad)
    assert res.returncode == 2 and "range rule needs 'min' or 'max'" in res.stderr
