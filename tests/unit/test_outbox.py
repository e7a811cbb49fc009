"""The SQLite outbox: order, acknowledgement, bounds with counted policies, reopen, WAL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge.sinks.mqtt.config import OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox, OutgoingMessage
from eiad.errors import PublishError


def msg(i: int, kind: str = "verdict", size: int = 10) -> OutgoingMessage:
    return OutgoingMessage(
        kind,
        f"p/l/s/{kind}",
        bytes([i % 256]) * size,
        f"id{i}:{kind}",
        properties={"content_type": "image/png"} if kind == "mask" else {},
    )


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path):
    return OutboxSettings(path=tmp_path / "box" / "outbox.sqlite3")


def test_pending_returns_rows_oldest_first_and_after_cursor(settings):
    # given an outbox with five messages
    box = Outbox(settings)
    ids = [box.put(msg(i)) for i in range(5)]
    # when reading from the start and after the second row
    first = box.pending(0, 100)
    rest = box.pending(ids[1], 2)
    # then order follows insertion and the cursor/limit are respected
    assert [r.row_id for r in first] == ids
    assert [r.message.dedup_key for r in first] == [f"id{i}:verdict" for i in range(5)]
    assert [r.row_id for r in rest] == ids[2:4]
    box.close()


def test_ack_deletes_rows_and_updates_depth(settings):
    box = Outbox(settings)
    ids = [box.put(msg(i, size=100)) for i in range(4)]
    # when two rows are acknowledged (one twice)
    assert box.ack([ids[0], ids[2]]) == 2
    assert box.ack([ids[0]]) == 0
    # then only the others remain, and the counters agree with the table
    stats = box.stats()
    assert [r.row_id for r in box.pending(0, 10)] == [ids[1], ids[3]]
    assert stats.depth_rows == 2 and stats.acked == 2
    assert stats.depth_bytes == 2 * (100 + len("p/l/s/verdict"))
    box.close()


def test_ids_are_never_reused_after_the_newest_row_is_acked(settings):
    # a reused id would be <= the dispatcher's cursor and never be published
    box = Outbox(settings)
    a = box.put(msg(1))
    box.ack([a])
    b = box.put(msg(2))
    assert b > a
    box.close()


def test_reopen_keeps_unacked_rows_in_order_with_payload_and_properties(settings):
    box = Outbox(settings)
    ids = [box.put(msg(i, kind="mask" if i % 2 else "verdict")) for i in range(6)]
    box.ack([ids[0]])
    box.close()
    box.close()  # idempotent
    # when the station restarts on the same file
    again = Outbox(settings)
    rows = again.pending(0, 100)
    # then the backlog is reported and comes back intact and in order
    assert again.backlog_at_open == 5 and again.last_id_at_open == ids[-1]
    assert [r.row_id for r in rows] == ids[1:]
    assert rows[0].message == msg(1, kind="mask")
    assert again.stats().depth_rows == 5
    again.close()


def test_wal_mode_is_on(settings):
    box = Outbox(settings)
    assert box.journal_mode().lower() == "wal"
    box.close()


def test_second_process_on_the_same_file_is_refused(settings):
    box = Outbox(settings)
    box.put(msg(1))
    # a second connection cannot take the exclusive lock
    with pytest.raises(PublishError, match="another station"):
        Outbox(settings)
    box.close()


def test_a_garbage_file_is_quarantined_and_a_fresh_outbox_opened(tmp_path, caplog):
    # given a file at the outbox path that is not SQLite (damaged disk, wrong file copied)
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    # when the station opens it
    caplog.set_level("ERROR")
    box = Outbox(OutboxSettings(path=path))
    # then it starts on a fresh file, the damaged ones are kept aside and named in the log
    kept = sorted(p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name)
    assert len(kept) == 1 and kept[0].startswith("outbox.sqlite3.corrupt-")
    assert (tmp_path / kept[0]).read_bytes() == b"this is not sqlite" * 100
    assert str(path) in caplog.text and kept[0] in caplog.text and "corrupt" in caplog.text
    assert box.stats().corrupt_quarantined == 1 and box.put(msg(1)) is not None
    box.close()


def test_last_sequence_is_stored_with_the_verdict_and_survives_a_reopen(settings):
    # given verdicts stored with their sequence numbers, one batch refused by a failing message
    box = Outbox(settings)
    box.put_many([msg(1)], sequence=41)
    box.put_many([msg(2), msg(3, kind="mask")], sequence=42)
    bad = OutgoingMessage("verdict", "p/l/s/verdict", b"x", "k", properties={"x": object()})
    with pytest.raises(TypeError):
        box.put_many([bad], sequence=43)
    assert box.stats().last_sequence == 42
    box.close()
    # when the station reopens the file, then it resumes after the last stored sequence
    again = Outbox(settings)
    assert again.last_sequence == 42
    again.close()


def test_a_full_disk_is_counted_alarmed_and_storing_resumes(settings, caplog):
    # given an outbox whose database may not grow (SQLite's page cap gives SQLITE_FULL, as a full disk)
    box = Outbox(settings)
    box.put(msg(0))
    pages = box._conn.execute("PRAGMA page_count").fetchone()[0]
    box._conn.execute(f"PRAGMA max_page_count={pages}")
    caplog.set_level("ERROR")
    # when bigger messages arrive, then put_many never raises: None per message, counted, alarmed
    assert box.put_many([msg(1, size=20_000), msg(2)], sequence=7) == [None, None]
    assert box.put_many([msg(3, size=20_000)]) == [None]
    stats = box.stats()
    assert stats.dropped_by_reason == {"disk_full": 3} and stats.full_alarm and stats.disk_full
    assert stats.depth_rows == 1 and stats.stored == 1 and stats.last_sequence == 0
    assert caplog.text.count("outbox disk full at") == 1 and "free space" in caplog.text
    # and as soon as space is back, storing resumes and the alarm clears
    box._conn.execute("PRAGMA max_page_count=1073741823")
    assert box.put_many([msg(4)], sequence=8)[0] is not None
    stats = box.stats()
    assert not stats.full_alarm and not stats.disk_full and stats.depth_rows == 2 and stats.last_sequence == 8
    box.close()


def test_puts_never_checkpoint_the_wal_the_background_thread_does(tmp_path):
    # given two outboxes: one whose checkpointer never runs, one checkpointing every 50 ms
    idle = Outbox(OutboxSettings(path=tmp_path / "a.db"), checkpoint_interval_s=3600)
    busy = Outbox(OutboxSettings(path=tmp_path / "b.db"), checkpoint_interval_s=0.05)
    for box in (idle, busy):
        for i in range(300):
            box.put(msg(i, size=4000))
    time.sleep(0.3)
    # then the writer itself never checkpointed (SQLite's default would at 1000 pages) ...
    page_bytes = idle._conn.execute("PRAGMA page_size").fetchone()[0] + 24  # WAL frame = header + page
    assert Path(tmp_path / "a.db-wal").stat().st_size // page_bytes > 1000
    # ... and the background checkpointer did: the rows reached the main file
    assert busy._checkpointer.checkpoints > 0
    assert (tmp_path / "a.db").stat().st_size < 100_000 < 1_000_000 < (tmp_path / "b.db").stat().st_size
    idle.close()
    busy.close()


def test_drop_oldest_counts_every_drop_exactly(tmp_path):
    # given a 10-row outbox that drops the oldest rows when full
    box = Outbox(OutboxSettings(path=tmp_path / "o.db", max_rows=10, policy="drop_oldest"))
    ids = [box.put(msg(i)) for i in range(25)]
    # then the newest ten remain and exactly fifteen drops were counted
    stats = box.stats()
    assert [r.row_id for r in box.pending(0, 100)] == ids[15:]
    assert stats.dropped_by_reason == {"full_drop_oldest": 15}
    assert stats.depth_rows == 10 and stats.full_alarm


def test_drop_oldest_masks_first_keeps_verdicts(tmp_path):
    # given verdict+mask pairs in a 10-row outbox
    box = Outbox(OutboxSettings(path=tmp_path / "o.db", max_rows=10, policy="drop_oldest_masks_first"))
    for i in range(8):
        box.put_many([msg(i, "verdict"), msg(i, "mask")])
    # then masks went first (16 stored - 10 kept = 6 drops), all 8 verdicts survive
    kinds = [r.message.kind for r in box.pending(0, 100)]
    assert kinds.count("verdict") == 8 and kinds.count("mask") == 2
    assert box.stats().dropped_by_reason == {"full_drop_mask": 6}
    # and once no mask is left, the oldest verdicts go (counted separately)
    for i in range(8, 12):
        box.put(msg(i, "verdict"))
    assert box.stats().dropped_by_reason == {"full_drop_mask": 8, "full_drop_oldest": 2}
    assert [r.message.dedup_key for r in box.pending(0, 100)][0] == "id2:verdict"


def test_byte_bound_applies_like_the_row_bound(tmp_path):
    each = 1000 + len("p/l/s/verdict")
    box = Outbox(OutboxSettings(path=tmp_path / "o.db", max_bytes=3 * each + 10, policy="drop_oldest"))
    for i in range(5):
        box.put(msg(i, size=1000))
    assert box.stats().depth_rows == 3 and box.stats().dropped_by_reason == {"full_drop_oldest": 2}
    # a single message larger than the whole outbox is dropped as too_large
    assert box.put(msg(9, size=5000)) is None
    assert box.stats().dropped_by_reason["too_large"] == 1


def test_refuse_new_keeps_backlog_refuses_and_alarms_until_acked(tmp_path):
    box = Outbox(OutboxSettings(path=tmp_path / "o.db", max_rows=3, policy="refuse_new"))
    ids = [box.put(msg(i)) for i in range(5)]
    assert ids[3:] == [None, None]
    stats = box.stats()
    assert stats.dropped_by_reason == {"refused_full": 2} and stats.full_alarm
    assert [r.message.dedup_key for r in box.pending(0, 10)] == ["id0:verdict", "id1:verdict", "id2:verdict"]
    # when the broker acknowledges one row, room is back and the alarm clears
    box.ack([ids[0]])
    assert not box.stats().full_alarm
    assert box.put(msg(7)) is not None


def test_rows_older_than_max_age_expire_counted(tmp_path):
    clock = FakeClock()
    box = Outbox(OutboxSettings(path=tmp_path / "o.db", max_age_s=60), clock=clock)
    box.put(msg(1))
    box.put(msg(2))
    clock.now += 30
    box.put(msg(3))
    # when 61 s have passed since the first two
    clock.now += 31
    box.expire()
    # then exactly those two expired
    assert [r.message.dedup_key for r in box.pending(0, 10)] == ["id3:verdict"]
    assert box.stats().dropped_by_reason == {"expired": 2}


def test_discard_counts_under_its_reason(settings):
    box = Outbox(settings)
    a = box.put(msg(1))
    assert box.discard([a], "broker_rejected") == 1
    assert box.stats().dropped_by_reason == {"broker_rejected": 1}
    assert box.stats().depth_rows == 0


def test_failed_transaction_rolls_back_the_whole_batch(settings):
    box = Outbox(settings)
    box.put(msg(0))
    bad = OutgoingMessage("verdict", "p/l/s/verdict", b"x", "k", properties={"x": object()})
    with pytest.raises(TypeError):
        box.put_many([msg(1), bad])
    assert [r.message.dedup_key for r in box.pending(0, 10)] == ["id0:verdict"]
    assert box.stats().depth_rows == 1


def test_the_file_is_readable_by_plain_sqlite_after_close(settings):
    box = Outbox(settings)
    box.put(msg(1))
    box.close()
    with sqlite3.connect(settings.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
