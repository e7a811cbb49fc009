"""Explanations on request over MQTT, end to end: a station with the artifact's real
(tiny, exported) language model explains a recent OK part when a PLC asks for it."""

from __future__ import annotations

import json
import threading

import pytest

from benchmarks.stand_ins.artifact import grey_frame
from benchmarks.stand_ins.subscriber import Subscriber
from edge.app import build_station
from edge.config import load_station_config
from edge.sources.watchdog import SourceSet
from eiad.messages import SCHEMA_DIR
from tests.support.json_schema import validate
from tests.support_edge.fakes import ListSource
from tests.unit.test_llm_fixtures import llm_artifact, parity_images, vision_artifact  # noqa: F401 (fixtures)

pytestmark = pytest.mark.mqtt

STATION = """\
station_id: st1
line_id: l1
artifact: {artifact}
sources:
  - {{kind: synthetic, id: cam0, path: unused.mkv}}
metrics: {{enabled: false}}
mqtt: {{host: 127.0.0.1, port: {port}, stats_interval_s: 0}}
outbox: {{path: outbox.sqlite3}}
explainer: {{mode: NG, precision: int8, max_new_tokens: 8, mqtt_requests: {{}}}}
"""


def schema(kind: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{kind}.v1.schema.json").read_text())


def test_a_requested_ok_part_is_explained_with_its_inspection_id(llm_artifact, mosquitto, tmp_path):  # noqa: F811
    # given a station (NG mode: OK parts are not explained by themselves) that accepts requests
    _, artifact, _ = llm_artifact
    path = tmp_path / "station.yaml"
    path.write_text(STATION.format(artifact=artifact, port=mosquitto.port))
    sources = SourceSet(check_interval_s=0.05)
    sources.add("cam0", lambda: ListSource("cam0", [grey_frame()] * 30, delay_s=0.05))
    plc = Subscriber(mosquitto.port, "eiad/l1/st1/#", client_id="plc")
    assert plc.subscribed.wait(5)
    station = build_station(load_station_config(path), sources=sources)
    stop = threading.Event()
    loop = threading.Thread(target=station.pipeline.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert plc.wait_for(lambda msgs: any(m.topic.endswith("/verdict") for m in msgs), 15)
        verdict = json.loads(plc.snapshot("/verdict")[0].payload)
        # when the PLC asks for an explanation of that part
        request = {"schema_version": 1, "inspection_id": verdict["inspection_id"], "requested_by": "plc-7"}
        assert validate(request, schema("explain_request")) == []
        plc.client.publish("eiad/l1/st1/explain/request", json.dumps(request).encode(), qos=1).wait_for_publish(5)
        # then the station answers "accepted" and later publishes the explanation with that id
        assert plc.wait_for(lambda msgs: any(m.topic.endswith("/explain/response") for m in msgs), 10)
        response = json.loads(plc.snapshot("/explain/response")[0].payload)
        assert validate(response, schema("explain_response")) == []
        assert (response["status"], response["reason"], response["inspection_id"]) == (
            "accepted",
            "",
            verdict["inspection_id"],
        )
        assert plc.wait_for(lambda msgs: any(m.topic.endswith("/explanation") for m in msgs), 30)
    finally:
        stop.set()
        loop.join(15)
        station.close()
        plc.close()
    explanations = [json.loads(m.payload) for m in plc.snapshot("/explanation")]
    mine = [e for e in explanations if e["inspection_id"] == verdict["inspection_id"]]
    assert len(mine) >= 1 and mine[0]["text"].strip()
    assert verdict["verdict"] == "OK"  # NG mode would not have explained it without the request
    assert mine[0]["meta"]["requested_by"] == "plc-7" and mine[0]["meta"]["requested"] is True
    assert validate(mine[0], schema("explanation")) == []
