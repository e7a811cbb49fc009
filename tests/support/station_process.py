"""A station process for kill tests: stores N results through a real MqttSink, reports on
stdout, then idles until killed.

    python -m tests.support.station_process --port 1883 --outbox o.db --count 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.stand_ins.results import make_result
from edge.sinks.mqtt.config import MqttSettings, OutboxSettings
from edge.sinks.mqtt.outbox.store import Outbox
from edge.sinks.mqtt.sink import MqttSink


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--wait-connected", action="store_true")
    args = parser.parse_args()
    settings = MqttSettings(
        port=args.port, line="l1", station="st1", reconnect_min_delay_s=0.2, reconnect_max_delay_s=0.5
    )
    sink = MqttSink(settings, Outbox(OutboxSettings(path=args.outbox)))
    if args.wait_connected:
        while not sink.stats()["connected"]:
            time.sleep(0.02)
    for seq in range(args.first, args.first + args.count):
        sink.handle(make_result(seq, "NG" if seq % 2 else "OK"))
    print("stored", flush=True)
    if args.wait_connected:
        sink.flush(10)
        print("flushed", flush=True)
    while True:  # until SIGKILL
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
