"""The sweep's search for the highest sustainable fps, against hand-made probe outcomes."""

from benchmarks.sweep import highest_sustainable


def _probe(passes):
    return lambda fps: (passes(fps), {"fps": fps})


def test_a_slow_low_end_does_not_hide_the_passing_region():
    # given a box that misses the budget at 5 fps (idle wake-up) but meets it from 10 to 70 fps
    best, history = highest_sustainable(_probe(lambda f: 10 <= f <= 70), 5.0, 240.0, steps=4)
    # then the ladder finds the region and the bisection lands within one step below 70
    assert 60.0 <= best <= 70.0
    assert [f for f, _, _ in history][:5] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert all(passed == (10 <= f <= 70) for f, passed, _ in history)


def test_nothing_passing_gives_zero_and_everything_passing_gives_the_maximum():
    assert highest_sustainable(_probe(lambda f: False), 5.0, 240.0, steps=3)[0] == 0.0
    assert highest_sustainable(_probe(lambda f: True), 5.0, 240.0, steps=3)[0] == 240.0


def test_the_ladder_stops_after_two_failures_above_a_pass():
    _, history = highest_sustainable(_probe(lambda f: f <= 10), 5.0, 1000.0, steps=0)
    assert [f for f, _, _ in history] == [5.0, 10.0, 20.0, 40.0]
