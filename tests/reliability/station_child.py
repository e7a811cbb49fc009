"""A station process for the process-fault campaigns: a real MqttSink + SQLite outbox fed
with results, reporting on stdout after each `handle()` returned, so the parent knows
which verdicts the station had committed when it SIGKILLs it.

    python -m tests.reliability.station_child --port P --outbox o.db --first 1 --count 500
        prints "ready", then "stored <seq>" per result, then "done", then idles until killed.
    --fsize-limit-bytes N: RLIMIT_FSIZE (soft) for this process after opening the outbox:
        the disk is "full" beyond N bytes per file; --lift-after K lifts it after K results;
        prints "stats <json>" (the sink's stats) at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from benchmarks.stand_ins.results import make_result
from edge.sinks.mqtt.config import OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink
from tests.reliability.conftest import sink_settings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--interval-s", type=float, default=0.002)
    parser.add_argument("--synchronous", default="NORMAL")
    parser.add_argument("--fsize-limit-bytes", type=int, default=0)
    parser.add_argument("--lift-after", type=int, default=0)
    parser.add_argument("--exit", action="store_true", help="close and exit 0 at the end instead of idling")
    args = parser.parse_args()
    sink = MqttSink(sink_settings(args.port), Outbox(OutboxSettings(path=args.outbox, synchronous=args.synchronous)))
    if args.fsize_limit_bytes:
        # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG like a full disk.
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit_bytes, resource.RLIM_INFINITY))
    print("ready", flush=True)
    for index, seq in enumerate(range(args.first, args.first + args.count)):
        if args.lift_after and index == args.lift_after:
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        sink.handle(make_result(seq, "NG" if seq % 3 == 0 else "OK", shape=(32, 48)))
        print(f"stored {seq}", flush=True)
        time.sleep(args.interval_s)
    print("done", flush=True)
    print("stats " + json.dumps(sink.stats(), default=str), flush=True)
    if args.exit:
        sink.close()
        return 0
    while True:  # until SIGKILL
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
