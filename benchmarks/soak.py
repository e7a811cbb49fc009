"""Soak: a station's MQTT sink + SQLite outbox under periodic broker outages, for a set time.

Feeds real InspectionResults (the sink path the camera loop uses) at `--rate-hz` into a
real Mosquitto started here, stops the broker for `--outage-s` every `--outage-every-s`,
and counts at a persistent-session QoS 1 subscriber. Prints frames in, verdicts
delivered, duplicates, missing (must be 0), max RSS, latency (capture -> subscriber)
p50/p99 overall and for parts captured while the broker was up. Exit 1 if any is missing.

No model runs here: the results are made up (every third part NG) to load the delivery
path, so the model's accuracy has no meaning in a soak and is not reported; what is
checked against the truth is that every delivered verdict is the one the station decided
(`verdicts_as_decided`, must be 1.0). `eiad bench line` and `eiad edge demo` score the
model's verdicts against the stream's ground truth.

    .venv/bin/python -m benchmarks.soak --duration-s 600      # the 10-minute run
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.stand_ins.delivery import check_delivery
from benchmarks.stand_ins.results import make_result
from benchmarks.stand_ins.subscriber import Subscriber
from edge.sinks.mqtt.broker import Mosquitto


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=60.0, help="how long parts are produced")
    parser.add_argument("--rate-hz", type=float, default=50.0, help="parts per second (every third is NG with a mask)")
    parser.add_argument("--outage-every-s", type=float, default=15.0, help="period of broker outages")
    parser.add_argument("--outage-s", type=float, default=3.0, help="how long each outage lasts")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the broker instead of stopping it")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # paho's reconnect chatter during outages is expected

    from edge.sinks.mqtt.config import MqttSettings, OutboxSettings
    from edge.sinks.mqtt.outbox.store import Outbox
    from edge.sinks.mqtt.sink import MqttSink

    work = Path(tempfile.mkdtemp(prefix="eiad-soak-"))
    broker = Mosquitto(work / "broker", persistence=True).start()
    received: list[tuple[float, dict]] = []
    sub = Subscriber(broker.port, "eiad/l1/st1/verdict", client_id="soak-plc")
    sub.subscribed.wait(5)
    original = sub.client.on_message

    def on_message(client, userdata, msg) -> None:
        received.append((time.time(), json.loads(msg.payload)))
        original(client, userdata, msg)

    sub.client.on_message = on_message
    settings = MqttSettings(
        port=broker.port,
        line="l1",
        station="st1",
        reconnect_min_delay_s=0.2,
        reconnect_max_delay_s=1.0,
        close_timeout_s=30.0,
    )
    sink = MqttSink(settings, Outbox(OutboxSettings(path=work / "outbox.db")))
    outages: list[tuple[float, float]] = []
    stop = threading.Event()

    def faults() -> None:
        while not stop.wait(args.outage_every_s):
            began = time.time()
            broker.kill() if args.kill else broker.stop()
            stop.wait(args.outage_s)
            broker.start()
            outages.append((began, time.time()))

    injector = threading.Thread(target=faults, daemon=True)
    injector.start()
    ids, captured, decided, period = [], {}, {}, 1.0 / args.rate_hz
    started = time.monotonic()
    seq = 0
    next_at = started
    while time.monotonic() - started < args.duration_s:
        seq += 1
        result = make_result(seq, "NG" if seq % 3 == 0 else "OK", shape=(64, 96))
        captured[result.inspection_id] = result.captured_unix_s
        decided[result.inspection_id] = result.verdict
        ids.append(result.inspection_id)
        sink.handle(result)
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    stop.set()
    injector.join(args.outage_s + 10)
    if not broker.running:
        broker.start()
    flushed = sink.flush(60)
    want = set(ids)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not want <= {v["inspection_id"] for _, v in list(received)}:
        time.sleep(0.1)
    report = check_delivery([v for _, v in list(received)], ids)
    first_arrival: dict[str, float] = {}
    for at, v in list(received):
        first_arrival.setdefault(v["inspection_id"], at)
    latency = {i: (first_arrival[i] - captured[i]) * 1e3 for i in first_arrival if i in captured}
    up = [
        ms for i, ms in latency.items() if not any(a - 1.0 <= captured[i] <= b + 2.0 for a, b in outages)
    ]  # margin: reconnect time
    figures = {
        "duration_s": args.duration_s,
        "rate_hz": args.rate_hz,
        "outages": len(outages),
        "outage_s": args.outage_s,
        "broker_fault": "SIGKILL" if args.kill else "stop",
        "frames_in": len(ids),
        "verdicts_delivered": report.delivered,
        "duplicates": report.duplicates,
        "missing": len(report.missing),
        "in_order": report.in_order,
        "flushed": flushed,
        "verdicts_as_decided": round(
            sum(v["verdict"] == decided.get(v["inspection_id"]) for _, v in received) / max(1, len(received)), 4
        ),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "latency_ms_p50": round(percentile(list(latency.values()), 0.5), 2),
        "latency_ms_p99": round(percentile(list(latency.values()), 0.99), 2),
        "latency_ms_p99_broker_up": round(percentile(up, 0.99), 2),
        "sink": {
            k: v
            for k, v in sink.stats().items()
            if k in ("disconnects", "acked", "replayed", "resent_after_reconnect", "dropped_by_reason")
        },
    }
    sink.close()
    sub.close()
    broker.stop()
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if report.ok and flushed and figures["verdicts_as_decided"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
