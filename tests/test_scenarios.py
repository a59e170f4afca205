"""Detection quality on the scenario suite: every change caught, no false alarm."""

import pytest

from inferwatch.testing.scenarios import NOT_MET, SCENARIOS, SLOW, build, run_inferwatch

# delay / bound allowed per scenario (default 4)
TOLERANCE: dict[str, float] = {
    "lines_canary_drift": 2.5,  # a change on a canary version, found on its own traffic (9x without)
}


@pytest.mark.parametrize("name", [s for s in SCENARIOS if s not in SLOW + NOT_MET])
def test_scenario(name):
    sc = build(name)
    score = run_inferwatch(sc, batch_size=5000)
    assert score.false_alarms == 0
    if sc.change_at is None:
        assert score.delay is None
    else:
        assert score.delay is not None, f"{name}: change on {sc.column} missed"
        bound = sc.bound()
        limit = max(TOLERANCE.get(name, 4) * bound, 64)
        assert score.delay <= limit, f"{name}: delay {score.delay} vs bound {bound:.0f}"
