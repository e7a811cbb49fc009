"""The loop benchmark leaves a run's first frames out of its latency statistics, but still
counts them as delivered."""

from types import SimpleNamespace

from benchmarks.loop_harness import collect, score_replayed, warmup_frames
from benchmarks.markdown import truth_cell


def test_warmup_is_three_frames_or_five_percent_never_more_than_half():
    assert [warmup_frames(n) for n in (2, 6, 20, 100, 1000)] == [1, 3, 3, 5, 50]


def test_cold_first_frames_are_delivered_but_not_timed():
    # given 20 frames whose first three took 100 ms to reach the subscriber and the rest 1 ms
    ms = 1_000_000
    stamps, received = {}, {}
    for i in range(20):
        captured = i * 50 * ms
        stamps[f"id{i}"] = {"_verdict": "OK", "captured": captured}
        received[f"id{i}"] = captured + (100 if i < 3 else 1) * ms
    timing = SimpleNamespace(stamps=stamps)
    listener = SimpleNamespace(received=received, duplicates=0)
    # when the run is collected
    run = collect(timing, listener, dropped=0, late=0, captured=20)
    # then every verdict counts as received, and the latency statistics hold only the warm frames
    assert run.verdicts_received == 20 and run.lost == 0
    assert len(run.stages_ms["total"]) == 17
    assert run.stages_ms["total"].max() == 1.0


def test_a_replayed_part_counts_once_and_its_worst_verdict_is_scored():
    # given a 4-part stream (parts 1 and 3 defective) replayed so that part 0 was judged 3
    # times, part 1 twice (once wrongly) and parts 2 and 3 once each
    truth = [{"label": "OK"}, {"label": "NG"}, {"label": "OK"}, {"label": "NG"}]
    judged = [(0, "OK"), (4, "OK"), (8, "OK"), (1, "NG"), (5, "OK"), (2, "NG"), (3, "NG")]
    messages = [{"frame_id": frame, "verdict": verdict} for frame, verdict in judged]
    # when scored
    scores = score_replayed(truth, messages)
    # then 4 parts are scored, part 1 as missed (its wrong replay), part 2 as overkill
    assert scores["scored"] == 4 and scores["verdicts"] == 7 and scores["replays_disagreeing"] == 1
    assert scores["miss_rate"] == 0.5 and scores["overkill_rate"] == 0.5 and scores["accuracy"] == 0.5
    # and the report says how many verdicts those parts had and that one part was judged differently
    cell = truth_cell({"accuracy": scores, "quality": {"passed": False}})
    assert cell == "acc 50.0% miss 50.0% overkill 50.0% of 4 parts (7 verdicts, 1 part judged differently) FAILED"
