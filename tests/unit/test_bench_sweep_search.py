"""The sweep's search for the highest sustainable fps, against hand-made probe outcomes."""

from benchmarks.sweep import highest_sustainable


def _probe(passes):
    return lambda fps: (passes(fps), {"fps": fps})


def test_the_sustainable_rate_has_every_lower_rate_passing():
    # given a loop that keeps up to 70 fps
    best, history = highest_sustainable(_probe(lambda f: f <= 70), 5.0, 240.0, steps=4)
    # then the ladder climbs to the first failing rung and the bisection lands within one step below 70
    assert [f for f, _, _ in history][:5] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert 60.0 <= best <= 70.0
    assert all(passed == (f <= 70) for f, passed, _ in history)


def test_a_failing_low_rung_is_not_climbed_past():
    # given a box that misses the budget at 10 fps but would meet it at 20 to 70 fps
    best, history = highest_sustainable(_probe(lambda f: f != 10 and f <= 70), 5.0, 240.0, steps=3)
    # then 5 fps is the sustainable rate: nothing above the first failure is reported
    assert 5.0 <= best < 10.0
    assert max(f for f, passed, _ in history if passed) < 10.0


def test_nothing_passing_gives_zero_and_everything_passing_gives_the_maximum():
    assert highest_sustainable(_probe(lambda f: False), 5.0, 240.0, steps=3)[0] == 0.0
    assert highest_sustainable(_probe(lambda f: True), 5.0, 240.0, steps=3)[0] == 240.0


def test_every_probe_runs_once():
    calls = []

    def probe(fps):
        calls.append(fps)
        return fps <= 50, {"fps": fps}

    _, history = highest_sustainable(probe, 5.0, 1000.0, steps=3)
    assert calls == [f for f, _, _ in history] and len(set(calls)) == len(calls)
