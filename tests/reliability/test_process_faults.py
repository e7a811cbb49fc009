"""Process faults: SIGKILL at random points around outbox writes and restart; SIGKILL of a
whole station between its sequence and outbox writes; power-loss style truncation of the
outbox; a corrupt outbox file; a full disk under the outbox.

Run as a module (`python -m tests.reliability.test_process_faults --station CONFIG
--kill-at K --kill-where before|after`) it is the whole-station child those tests kill."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks.stand_ins.delivery import check_delivery, verdicts
from edge.sinks.mqtt.config import OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox, OutgoingMessage
from edge.sinks.mqtt.sink import MqttSink
from tests.reliability.conftest import sink_settings
from tests.support.mosquitto import free_port
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)

pytestmark = pytest.mark.mqtt
REPO = Path(__file__).resolve().parents[2]


class Child:
    """tests/reliability/station_child.py as a subprocess; `stored` = sequences whose handle() returned."""

    def __init__(self, *args: str) -> None:
        # stderr to a file: a child logging many tracebacks must never block on a full pipe
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.station_child", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
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
    sub.wait_for(
        lambda m: ids <= {v["inspection_id"] for v in verdicts([x.payload for x in m if x.topic.endswith("/verdict")])},
        timeout_s,
    )
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
        child = Child(
            "--port",
            str(broker.port),
            "--outbox",
            str(box),
            "--first",
            str(next_seq),
            "--count",
            "5000",
            "--interval-s",
            "0.001",
        )
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
    final = Child(
        "--port", str(broker.port), "--outbox", str(box), "--first", str(next_seq), "--count", "3", "--interval-s", "0"
    )
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
    mosquitto_factory, subscriber_factory, tmp_path, keep_fraction, caplog
):
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


def test_a_corrupt_outbox_file_is_quarantined_and_the_station_starts_fresh(tmp_path, caplog):
    # given an outbox whose main file lost its second half (disk or filesystem damage)
    box, _ = _killed_station_with_backlog(tmp_path, 300)
    Outbox(OutboxSettings(path=box)).close()  # checkpoint: everything into the main file
    damaged = box.read_bytes()[: box.stat().st_size // 2]
    box.write_bytes(damaged)
    # when the station opens it (under systemd a refusal here would be a crash loop)
    caplog.set_level("ERROR")
    outbox = Outbox(OutboxSettings(path=box))
    # then it starts on a fresh, empty outbox and keeps working
    assert outbox.backlog_at_open == 0 and outbox.put(OutgoingMessage("verdict", "t/v", b"{}", "x:verdict")) is not None
    stats = outbox.stats()
    assert stats.corrupt_quarantined == 1 and stats.depth_rows == 1
    # and the damaged file is kept, byte for byte, under a name the log gives beside the path
    kept = [
        p for p in tmp_path.iterdir() if p.name.startswith("o.db.corrupt-") and not p.name.endswith(("-wal", "-shm"))
    ]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert str(box) in caplog.text and str(kept[0]) in caplog.text
    outbox.close()


def _run_disk_full_child(tmp_path: Path, lift_after: int) -> tuple[dict, Path, list[int]]:
    box = tmp_path / "o.db"
    child = Child(
        "--port",
        str(free_port()),
        "--outbox",
        str(box),
        "--count",
        "200",
        "--interval-s",
        "0",
        "--fsize-limit-bytes",
        "120000",
        "--lift-after",
        str(lift_after),
        "--exit",
    )
    lines = child.run_to_end()
    assert child.proc.returncode == 0, child.error_text()
    stats = json.loads(next(line for line in lines if line.startswith("stats "))[6:])
    return stats, box, child.stored


def test_a_full_disk_never_crashes_the_station_and_keeps_the_outbox_intact(tmp_path):
    # given a station whose outbox file cannot grow past 120 kB, lifted after 150 results
    stats, box, stored = _run_disk_full_child(tmp_path, lift_after=150)
    # then the station handled all 200 results without dying (handle() never raises)
    assert stored == list(range(1, 201))
    # and each message it could not store is counted as disk_full, not as a sink failure
    assert stats["dropped_by_reason"].get("disk_full", 0) > 0 and stats.get("handle_failed", 0) == 0, stats
    # and the outbox file is a sound SQLite file whose rows are in order: those written
    # before the disk filled and those written after space came back
    with sqlite3.connect(box) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [k for (k,) in conn.execute("SELECT dedup_key FROM messages WHERE kind='verdict' ORDER BY id")]
        rows = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        last_sequence = conn.execute("SELECT value FROM meta WHERE key='last_sequence'").fetchone()[0]
    seqs = [int(k.split(":")[0].split("-")[1]) for k in keys]
    assert seqs == sorted(seqs) and seqs[0] == 1 and seqs[-1] == 200 and last_sequence == 200
    assert 150 + 1 in seqs  # storing resumed as soon as space came back
    assert stats["outbox_depth_rows"] == rows and not stats["outbox_full_alarm"], stats  # alarm cleared


def test_a_full_disk_raises_the_full_alarm_and_counts_each_lost_message(tmp_path):
    stats, box, _ = _run_disk_full_child(tmp_path, lift_after=0)
    with sqlite3.connect(box) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    assert stats["outbox_depth_rows"] == rows, stats
    assert stats["outbox_full_alarm"] and stats["outbox_disk_full"], stats
    # every result after the disk filled: a verdict each, plus a mask for each NG (one in three)
    lost = stats["dropped_by_reason"]["disk_full"]
    assert lost == stats["refused_by_outbox"] > 0 and stats.get("handle_failed", 0) == 0, stats
    assert stats["stored"] + lost == 200 + 200 // 3, stats


STATION = """\
station_id: st1
line_id: l1
artifact: {artifact}
sources:
  - {{kind: synthetic, id: cam, path: line/line.mkv, policy: triggered, queue_capacity: 2}}
metrics: {{enabled: false}}
mqtt: {{host: 127.0.0.1, port: {port}, reconnect_min_delay_s: 0.1, reconnect_max_delay_s: 0.5, close_timeout_s: 5}}
outbox: {{path: state/outbox.sqlite3}}
sequence_file: state/sequence.state
"""


@pytest.mark.parametrize("kill_where", ["before", "after"])
def test_a_station_killed_between_its_writes_leaves_no_sequence_gap(
    mosquitto_factory, subscriber_factory, tmp_path, tiny_artifact, kill_where
):
    # given a whole station (video -> ONNX -> sinks -> MQTT) SIGKILLed while it handles its
    # 6th part: just before the MQTT sink stores it, or just after (before the sequence file)
    from benchmarks.stand_ins.frames import write_synthetic_line

    broker = mosquitto_factory(persistence=True)
    sub = subscriber_factory(broker.port)
    write_synthetic_line(tmp_path / "line", count=10)
    config = tmp_path / "station.yaml"
    config.write_text(STATION.format(artifact=tiny_artifact, port=broker.port))
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.test_process_faults",
            "--station",
            str(config),
            "--kill-at",
            "6",
            "--kill-where",
            kill_where,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    # when it is restarted and runs the (replayed) line to its end
    again = subprocess.run(
        [sys.executable, "-m", "tests.reliability.test_process_faults", "--station", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    # then the subscriber sees sequence numbers without a gap, and the restart went on from last + 1
    stored_before_kill = 5 if kill_where == "before" else 6
    expected = list(range(1, stored_before_kill + 10 + 1))
    assert sub.wait_for(
        lambda m: (
            {v["sequence"] for v in verdicts([x.payload for x in m if x.topic.endswith("/verdict")])} >= set(expected)
        ),
        15,
    )
    got = verdicts([m.payload for m in sub.snapshot("/verdict")])
    assert sorted({v["sequence"] for v in got}) == expected
    assert f"sequence numbering continues at {stored_before_kill + 1}" in again.stderr


def _station_child() -> int:
    """The whole station, SIGKILLing itself at the K-th verdict the MQTT sink stores."""
    import argparse
    import logging
    import os
    import signal

    from edge.app import run_station
    from edge.config import load_station_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--station", type=Path, required=True)
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--kill-where", choices=["before", "after"], default="before")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.kill_at:
        real, calls = Outbox.put_many, []

        def put_many(self, messages, sequence=None):
            calls.append(sequence)
            if len(calls) == args.kill_at and args.kill_where == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            ids = real(self, messages, sequence)
            if len(calls) == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return ids

        Outbox.put_many = put_many
    run_station(load_station_config(args.station))
    return 0


if __name__ == "__main__":
    sys.exit(_station_child())
