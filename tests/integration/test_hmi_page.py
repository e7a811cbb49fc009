"""The operator page served for real (uvicorn on a free port), fed through its sink."""

from __future__ import annotations

import http.client
import json
import threading
import time

import cv2
import numpy as np
import pytest

from edge.app import build_station
from tests.integration.test_station_mqtt import make_station
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)
from tests.support_hmi.page import Client, part, settings, start_page, wait_for


@pytest.fixture
def page(tmp_path):
    server = start_page(tmp_path, health=lambda: {"status": "ok", "problems": [], "counts": {"results": {"NG": 1}}})
    yield server
    server.close()


def _feed(page, verdict="NG", **kw):
    result, image = part(verdict, **kw)
    page.feed.handle(result, image)
    wait_for(lambda: page.feed.history.get(result.inspection_id))
    return result, image


def test_nothing_without_a_session_and_wrong_passwords_are_refused(page):
    client = Client(page.url)
    status, _, headers = client.request("GET", "/")
    assert status == 303 and headers["Location"] == "/login"
    for path in ("/api/live", "/api/history", "/api/health", "/api/events", "/api/me"):
        assert client.request("GET", path)[0] == 401, path
    assert client.request("POST", "/api/feedback", {"inspection_id": "x", "action": "confirmed"})[0] == 401
    assert client.login("olga", "not-her-password")[0] == 401
    status, body = client.login("olga")
    assert status == 200 and body["role"] == "operator"
    status, html, headers = client.request("GET", "/")
    assert status == 200 and b"/static/hmi.js" in html
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    cookie = next(c for c in client.jar if c.name == "eiad_hmi_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite").lower() == "strict"


def test_login_is_rate_limited_per_client(page):
    client = Client(page.url)
    codes = [client.login("olga", f"guess-{i}")[0] for i in range(6)]
    assert codes == [401] * 5 + [429]
    assert client.login("olga")[0] == 429  # even the right password waits out the minute


def test_live_state_history_and_pictures_come_from_what_the_sink_took(page):
    client = Client(page.url)
    client.login("vic")
    ng, image = _feed(page, "NG", source="cam0")
    ok, _ = _feed(page, "OK", source="cam1")
    page.feed.handle_explanation(
        ng.inspection_id, "There is a crack in the centre.", {"consistent": False, "disagreements": "size"}
    )
    wait_for(lambda: (page.feed.history.get(ng.inspection_id) or {}).get("explanation"))
    status, live, _ = client.request("GET", "/api/live")
    assert status == 200
    assert [p["source"] for p in live["latest"]] == ["cam0", "cam1"]
    assert live["recent_ng"][0]["inspection_id"] == ng.inspection_id
    assert live["recent_ng"][0]["consistent"] is False and live["recent_ng"][0]["disagreements"] == ["size"]
    _, history, _ = client.request("GET", "/api/history?verdict=NG")
    assert [p["inspection_id"] for p in history["items"]] == [ng.inspection_id]
    _, history, _ = client.request("GET", "/api/history?camera=cam1")
    assert [p["inspection_id"] for p in history["items"]] == [ok.inspection_id]
    status, png, _ = client.request("GET", f"/media/{ng.inspection_id}/image")
    assert status == 200 and np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), image)
    status, png, _ = client.request("GET", f"/media/{ng.inspection_id}/overlay")
    overlay = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (48, 64, 4) and overlay[15, 35, 3] > 0 and overlay[0, 0, 3] == 0
    assert client.request("GET", "/media/..%2F..%2Fetc/image")[0] == 404
    _, health, _ = client.request("GET", "/api/health")
    assert health["counts"]["results"]["NG"] == 1


def test_the_history_survives_a_restart_of_the_page(tmp_path):
    first = start_page(tmp_path)
    kept, _ = part("NG")
    first.feed.handle(kept, np.zeros((48, 64, 3), np.uint8))
    first.close()  # stores what is queued
    second = start_page(tmp_path)
    try:
        client = Client(second.url)
        client.login("vic")
        _, history, _ = client.request("GET", "/api/history")
        assert [p["inspection_id"] for p in history["items"]] == [kept.inspection_id]
    finally:
        second.close()


def test_an_operator_judgement_becomes_ddqa_data_and_an_audit_line(page, tmp_path):
    client = Client(page.url)
    client.login("olga")
    ng, _ = _feed(page, "NG", defect_class="crack")
    alarm, _ = _feed(page, "NG", defect_class="stain")
    missed, _ = _feed(page, "OK")
    base = tmp_path / "review" / "line1" / "cam0"
    status, record, _ = client.request(
        "POST", "/api/feedback", {"inspection_id": ng.inspection_id, "action": "confirmed"}
    )
    assert status == 200 and record["defect_class"] == "crack"
    image, mask = (
        base / "NG/crack/image" / f"{ng.inspection_id}.png",
        base / "NG/crack/mask" / f"{ng.inspection_id}.png",
    )
    assert image.is_file() and cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)[15, 35] == 255
    assert (
        client.request("POST", "/api/feedback", {"inspection_id": alarm.inspection_id, "action": "false_alarm"})[0]
        == 200
    )
    assert (base / "OK/image" / f"{alarm.inspection_id}.png").is_file()
    status, body, _ = client.request(
        "POST", "/api/feedback", {"inspection_id": missed.inspection_id, "action": "missed_defect"}
    )
    assert status == 409 and "choose the defect class" in body["error"]
    body = {"inspection_id": missed.inspection_id, "action": "missed_defect", "defect_class": "scratch"}
    assert client.request("POST", "/api/feedback", body)[0] == 200
    assert (base / "NG/scratch/image" / f"{missed.inspection_id}.png").is_file()
    # the operator changes their mind: the copies move, the audit log keeps both
    body = {"inspection_id": ng.inspection_id, "action": "reclass", "defect_class": "scratch"}
    assert client.request("POST", "/api/feedback", body)[0] == 200
    assert not image.exists() and (base / "NG/scratch/mask" / f"{ng.inspection_id}.png").is_file()
    audit = [json.loads(line) for line in (tmp_path / "review" / "audit.jsonl").read_text().splitlines()]
    assert [(a["user"], a["action"]) for a in audit] == [
        ("olga", "confirmed"),
        ("olga", "false_alarm"),
        ("olga", "missed_defect"),
        ("olga", "reclass"),
    ]
    assert page.feed.history.get(ng.inspection_id)["review"]["action"] == "reclass"
    assert client.request("POST", "/api/feedback", {"inspection_id": ng.inspection_id, "action": "x"})[0] == 409
    body = {"inspection_id": ng.inspection_id, "action": "reclass", "defect_class": "../../etc"}
    assert client.request("POST", "/api/feedback", body)[0] == 409


def test_writes_need_the_operator_role_the_csrf_token_and_the_same_origin(page):
    ng, _ = _feed(page, "NG")
    body = {"inspection_id": ng.inspection_id, "action": "confirmed"}
    viewer = Client(page.url)
    viewer.login("vic")
    status, answer, _ = viewer.request("POST", "/api/feedback", body)
    assert status == 403 and "may look but not judge" in answer["error"]
    operator = Client(page.url)
    operator.login("olga")
    token, operator.csrf = operator.csrf, None
    assert operator.request("POST", "/api/feedback", body)[0] == 403
    assert operator.request("POST", "/api/feedback", body, headers={"X-CSRF-Token": "forged"})[0] == 403
    operator.csrf = token
    assert operator.request("POST", "/api/feedback", body, headers={"Origin": "http://evil.example"})[0] == 403
    assert operator.request("POST", "/api/feedback", body)[0] == 200


def _read_events(url: str, cookie: str, wanted: int, timeout_s: float = 10.0) -> list[tuple[str, dict]]:
    host, port = url.split("//")[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    connection.request("GET", "/api/events", headers={"Cookie": f"eiad_hmi_session={cookie}"})
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    events, kind = [], None
    while len(events) < wanted:
        line = response.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[6:])))
    connection.close()
    return events


def test_updates_stream_to_a_browser_as_server_sent_events(page):
    client = Client(page.url)
    client.login("vic")
    cookie = next(c.value for c in client.jar if c.name == "eiad_hmi_session")
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(_read_events(page.url, cookie, 2)))
    reader.start()
    wait_for(lambda: page.feed.hub.clients == 1)
    ng, _ = _feed(page, "NG")
    page.feed.handle_explanation(ng.inspection_id, "A crack.", {"consistent": True})
    reader.join(timeout=10)
    assert [k for k, _ in got] == ["result", "explanation"]
    assert got[0][1]["inspection_id"] == ng.inspection_id and got[1][1]["consistent"] is True
    wait_for(lambda: page.feed.hub.clients == 0)  # a closed page leaves the hub


def test_a_browser_that_never_reads_cannot_block_the_station_or_grow_memory(tmp_path):
    page = start_page(tmp_path, client_queue=4, queue_size=8)
    try:
        client = Client(page.url)
        client.login("vic")
        cookie = next(c.value for c in client.jar if c.name == "eiad_hmi_session")
        host, port = page.url.split("//")[1].rstrip("/").split(":")
        stuck = http.client.HTTPConnection(host, int(port))
        stuck.request("GET", "/api/events", headers={"Cookie": f"eiad_hmi_session={cookie}"})
        wait_for(lambda: page.feed.hub.clients == 1)
        started = time.perf_counter()
        for _ in range(300):
            page.feed.handle(*part("NG"))
        took = time.perf_counter() - started
        assert took < 1.0, f"handle() waited: {took:.2f} s for 300 results"
        stats = wait_for(lambda: (s := page.feed.stats()) and s["queued"] == 0 and s)
        assert stats["written"] + stats["dropped"] == 300 and stats["written"] > 0
        # what waits for the stuck page on the server is at most its queue (the socket's
        # buffers and uvicorn's flow control bound the rest)
        assert all(q.qsize() <= 4 for q in page.feed.hub._clients)
        stuck.close()
    finally:
        page.close()


def test_the_history_keeps_its_newest_items_and_prunes_their_files(tmp_path):
    page = start_page(tmp_path, history_max_items=10)
    try:
        for _ in range(15):
            _feed(page, "NG")
        kept = page.feed.history.query(limit=500)
        assert len(kept) == 10
        assert len(list((tmp_path / "hmi" / "images").glob("*.mask.png"))) == 10
    finally:
        page.close()


@pytest.mark.mqtt
def test_a_station_with_hmi_serves_its_own_results_and_health(tmp_path, tiny_artifact, mosquitto):
    # given a station with the page on, on a 9-part line (3 NG)
    config, truths = make_station(tmp_path, tiny_artifact, mosquitto.port, 9)
    config = config.model_copy(update={"hmi": settings(tmp_path, history_max_items=100)})
    station = build_station(config)
    try:
        assert "hmi" in station.sinks and station.hmi is not None
        # when the line runs to its end
        station.pipeline.run(threading.Event())
        client = Client(station.hmi.url)
        client.login("vic")
        wait_for(lambda: station.hmi.feed.stats()["written"] == 9)
        _, history, _ = client.request("GET", "/api/history?limit=50")
        _, health, _ = client.request("GET", "/api/health")
    finally:
        station.close()
    # then the page lists every part with the station's verdicts, and the same counters as /health
    by_frame = {p["frame_id"]: p for p in history["items"]}
    assert [by_frame[i]["verdict"] for i in range(9)] == [t["label"] for t in truths]
    assert health["counts"]["results"] == {"OK": 6, "NG": 3}
    assert health["components"]["hmi"]["written"] == 9 and health["components"]["mqtt"]["connected"] is True


def test_the_review_tree_is_a_ddqa_root_that_eiad_data_ddqa_reads(page, tmp_path):
    """The loop closes: judgements -> `eiad data ddqa <review_dir>` -> records for training."""
    from train.data.ddqa.build import DdqaOptions, build_ddqa

    client = Client(page.url)
    client.login("olga")
    judged = []
    for verdict, action, cls in (
        [("NG", "confirmed", None)] * 3 + [("NG", "false_alarm", None)] * 3 + [("OK", "missed_defect", "scratch")]
    ):
        result, _ = _feed(page, verdict, defect_class="crack")
        body = {"inspection_id": result.inspection_id, "action": action, "defect_class": cls}
        assert client.request("POST", "/api/feedback", body)[0] == 200
        judged.append(result)
    report = build_ddqa(tmp_path / "review", tmp_path / "ddqa", DdqaOptions(seed=0, progress=False))
    per_class: dict[str, int] = {}
    for split in report.class_balance.values():
        for name, n in split.items():
            per_class[name] = per_class.get(name, 0) + n
    assert report.images_used == 6 and report.classes == ["crack"]
    assert per_class.get("crack") == 3, per_class
    # the missed defect waits for its mask, and says so
    assert report.skipped_counts == {"mask_missing": 1}


def test_ok_pictures_wait_in_memory_until_viewed_judged_or_stopped_and_only_the_last_ones(tmp_path):
    # given a page keeping the last 3 OK pictures in memory
    page = start_page(tmp_path, ok_pictures_kept=3)
    images_dir = tmp_path / "hmi" / "images"
    try:
        client = Client(page.url)
        client.login("vic")
        parts = [_feed(page, "OK") for _ in range(5)]
        # then no OK frame was encoded as it passed
        assert not list(images_dir.glob("*.png"))
        # and a browser asking for a recent one gets it, byte-exact, written on demand
        recent, image = parts[-1]
        status, png, _ = client.request("GET", f"/media/{recent.inspection_id}/image")
        assert status == 200 and np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), image)
        assert (images_dir / f"{recent.inspection_id}.png").is_file()
        # and an OK part older than the last 3 has no picture any more
        assert client.request("GET", f"/media/{parts[0][0].inspection_id}/image")[0] == 404
    finally:
        page.close()
    # and stopping the page writes the ones still in memory (parts 3 and 4), not the evicted ones
    written = sorted(p.name for p in images_dir.glob("*.png"))
    assert written == sorted(f"{r.inspection_id}.png" for r, _ in parts[2:])
