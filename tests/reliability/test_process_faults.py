"""Process faults: SIGKILL at random points around outbox writes and restart; power-loss
style truncation of the outbox; a corrupt outbox file; a full disk under the outbox."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.sinks.mqtt import MqttSink
from edge.sinks.mqtt_config import OutboxSettings
from eiad.errors import PublishError
from tests.reliability.conftest import sink_settings
from tests.reliability.delivery import check_delivery, verdicts
from tests.support.mosquitto import free_port

pytestmark = pytest.mark.mqtt
REPO = Path(__file__).resolve().parents[2]


class Child:
    """tests/reliability/station_child.py as a subprocess; `stored` = sequences whose handle() returned."""

    def __init__(self, *args: str) -> None:
        # stderr to a file: a child logging many tracebacks must never block on a full pipe
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.station_child", *args], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.stored: list[int] = []
        self.lines: list[str] = []
        assert self.readline() == "ready", self.error_text()

    def error_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def readline(self) -> str:
        line = self.proc.stdout.readline().strip()
        self.lines.append(line)
        if line.startswith("stored "):
            self.stored.append(int(line.split()[1]))
        return line

    def kill_and_collect(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for line in self.proc.stdout.read().splitlines():  # what it printed before dying
            if line.startswith("stored "):
                self.stored.append(int(line.split()[1]))
        self.proc.stdout.close()
        self.stderr.close()

    def run_to_end(self, timeout_s: float = 60.0) -> list[str]:
        """Wait for a child started with --exit; returns every stdout line."""
        rest = self.proc.stdout.read().splitlines()
        self.proc.wait(timeout_s)
        for line in rest:
            if line.startswith("stored "):
                self.stored.append(int(line.split()[1]))
        return self.lines + rest


def wait_ids(sub, ids: set[str], timeout_s: float = 20.0) -> list[dict]:
    sub.wait_for(lambda m: ids <= {v["inspection_id"] for v in verdicts([x.payload for x in m if x.topic.endswith("/verdict")])},
                 timeout_s)
    return verdicts([m.payload for m in sub.snapshot("/verdict")])


def test_sigkill_at_random_points_loses_no_committed_verdict(mosquitto_factory, subscriber_factory, tmp_path):
    # given a station killed at random moments while it writes its outbox, every other
    # round with the broker down so the backlog must survive the kill and be replayed
    broker = mosquitto_factory(persistence=True)
    sub = subscriber_factory(broker.port)
    rng = random.Random(7)
    box = tmp_path / "o.db"
    next_seq, committed = 1, []
    for round_index in range(5):
        if round_index % 2:
            broker.stop()
        elif not broker.running:
            broker.start()
        child = Child("--port", str(broker.port), "--outbox", str(box), "--first", str(next_seq), "--count", "5000",
                      "--interval-s", "0.001")
        time.sleep(rng.uniform(0.05, 0.4))  # before, during or after a commit: wherever it lands
        child.kill_and_collect()
        assert child.stored, f"round {round_index}: nothing stored before the kill"
        committed += child.stored
        # the result being handled at the kill may or may not be committed: the restarted
        # station reproduces that id, so it arrives at least once either way
        next_seq = child.stored[-1] + 1
    if not broker.running:
        broker.start()
    # when the station restarts one last time and flushes
    final = Child("--port", str(broker.port), "--outbox", str(box), "--first", str(next_seq), "--count", "3",
                  "--interval-s", "0")
    while final.readline() != "done":
        pass
    ids = [f"st1-{seq:06d}" for seq in committed + final.stored]
    received = wait_ids(sub, set(ids))
    final.kill_and_collect()
    # then every verdict whose handle() returned arrived, in order after de-duplication
    report = check_delivery(received, ids)
    assert not report.missing and report.in_order, report
    assert len(set(ids)) == len(ids) and len(ids) > 20


def _killed_station_with_backlog(tmp_path: Path, count: int) -> tuple[Path, list[int]]:
    """An outbox left by a station SIGKILLed while its broker was unreachable."""
    box = tmp_path / "o.db"
    child = Child("--port", str(free_port()), "--outbox", str(box), "--count", str(count), "--interval-s", "0")
    while child.readline() != "done":
        pass
    child.kill_and_collect()
    assert child.stored == list(range(1, count + 1))
    return box, child.stored


@pytest.mark.parametrize("keep_fraction", [0.7, 0.3, 0.05])
def test_a_torn_wal_after_power_loss_keeps_a_gapless_prefix_and_the_station_starts(
        mosquitto_factory, subscriber_factory, tmp_path, keep_fraction, caplog):
    # given a killed station's outbox whose WAL lost its tail (the page cache never reached
    # the disk: power cut with synchronous=NORMAL)
    box, stored = _killed_station_with_backlog(tmp_path, 400)
    wal = Path(f"{box}-wal")
    assert wal.exists(), "expected the commits in the WAL (killed before a checkpoint)"
    wal.write_bytes(wal.read_bytes()[: int(wal.stat().st_size * keep_fraction)])
    broker = mosquitto_factory(persistence=True)
    sub = subscriber_factory(broker.port)
    # when the station starts again
    caplog.set_level("INFO")
    outbox = Outbox(OutboxSettings(path=box))
    kept = outbox.backlog_at_open
    kept_verdicts = sum(1 for row in outbox.pending(0, 10_000) if row.message.kind == "verdict")
    sink = MqttSink(sink_settings(broker.port), outbox)
    assert sink.flush(15), sink.stats()
    # then it started, said how much it recovered, and delivered an in-order prefix with no holes
    assert 0 < kept <= 400 + 400 // 3 and kept_verdicts > 0
    assert f"holds {kept} unsent messages" in caplog.text
    assert sub.wait_for(lambda m: len([x for x in m if x.topic.endswith("/verdict")]) >= kept_verdicts, 10)
    got = [v["inspection_id"] for v in verdicts([m.payload for m in sub.snapshot("/verdict")])]
    assert got == [f"st1-{seq:06d}" for seq in range(1, kept_verdicts + 1)], got[:5]
    sink.close()


def test_a_corrupt_outbox_file_is_refused_with_a_message_that_names_it(tmp_path):
    # given an outbox whose main file lost its second half (disk or filesystem damage)
    box, _ = _killed_station_with_backlog(tmp_path, 300)
    Outbox(OutboxSettings(path=box)).close()  # checkpoint: everything into the main file
    box.write_bytes(box.read_bytes()[: box.stat().st_size // 2])
    # when the station opens it, then it stops with an error naming the file and the fix
    with pytest.raises(PublishError) as caught:
        Outbox(OutboxSettings(path=box))
    message = str(caught.value)
    assert str(box) in message and "move it aside" in message
    # and the damaged file is left untouched for inspection
    assert box.exists() and box.stat().st_size > 0


def _run_disk_full_child(tmp_path: Path, lift_after: int) -> tuple[dict, Path, list[int]]:
    box = tmp_path / "o.db"
    child = Child("--port", str(free_port()), "--outbox", str(box), "--count", "200", "--interval-s", "0",
                  "--fsize-limit-bytes", "120000", "--lift-after", str(lift_after), "--exit")
    lines = child.run_to_end()
    assert child.proc.returncode == 0, child.error_text()
    stats = json.loads(next(line for line in lines if line.startswith("stats "))[6:])
    return stats, box, child.stored


def test_a_full_disk_never_crashes_the_station_and_keeps_the_outbox_intact(tmp_path):
    # given a station whose outbox file cannot grow past 120 kB, lifted after 150 results
    stats, box, stored = _run_disk_full_child(tmp_path, lift_after=150)
    # then the station handled all 200 results without dying (handle() never raises)
    assert stored == list(range(1, 201))
    assert stats["handle_failed"] > 0, stats  # the failed writes are counted, with the error logged
    # and the outbox file is a sound SQLite file whose rows are in order: those written
    # before the disk filled and those written after space came back
    with sqlite3.connect(box) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [k for (k,) in conn.execute("SELECT dedup_key FROM messages WHERE kind='verdict' ORDER BY id")]
    seqs = [int(k.split(":")[0].split("-")[1]) for k in keys]
    assert seqs == sorted(seqs) and seqs[0] == 1 and seqs[-1] == 200
    assert 150 + 1 in seqs  # storing resumed as soon as space came back


@pytest.mark.xfail(strict=True, reason=(
    "edge/outbox.py put_many: on SQLITE_FULL SQLite has already rolled back, the explicit "
    "ROLLBACK raises 'cannot rollback - no transaction is active', masking the error and "
    "skipping _reload_totals_locked, so depth_rows counts rows that were never written and "
    "no full alarm is raised. Fix: roll back only if conn.in_transaction, reload totals, and "
    "on sqlite3.OperationalError with sqlite_errorcode == SQLITE_FULL set full_alarm and count "
    "dropped_by_reason['disk_full'] instead of raising"))
def test_a_full_disk_raises_the_full_alarm_and_counts_each_lost_message(tmp_path):
    stats, box, _ = _run_disk_full_child(tmp_path, lift_after=0)
    with sqlite3.connect(box) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert stats["outbox_depth_rows"] == rows, stats
    assert stats["outbox_full_alarm"] and stats["dropped_by_reason"].get("disk_full", 0) > 0, stats
