"""The operator page in a real browser: Debian's chromium, headless, driven by Selenium
through the system's chromedriver (`make system-deps` installs both; nothing downloads one).

Screenshots go to $EIAD_HMI_SCREENSHOTS when set (the docs' pictures:
`EIAD_HMI_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/integration/test_hmi_browser.py`).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from edge.app import build_station
from tests.integration.test_station_mqtt import make_station
from tests.support_edge.fixtures import tiny_artifact  # noqa: F401 (fixture)
from tests.support_hmi.page import PASSWORDS, Client, part, settings, start_page, wait_for


def _browser() -> webdriver.Chrome:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromium-driver are needed: make system-deps (apt) installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def _looks_like_a_part(result, image: np.ndarray) -> np.ndarray:
    """A 224 px textured part with the defect drawn where the mask says (for the pictures)."""
    rng = np.random.default_rng(result.sequence)
    texture = cv2.GaussianBlur(rng.integers(60, 200, (224, 224), dtype=np.uint8), (0, 0), 2.5)
    frame = cv2.cvtColor(texture, cv2.COLOR_GRAY2BGR)
    if result.mask is not None and result.mask.any():
        mask = cv2.resize(result.mask, (224, 224), interpolation=cv2.INTER_NEAREST)
        frame[mask > 0] = (frame[mask > 0] * 0.35).astype(np.uint8)
        object.__setattr__(result, "mask", mask)
    return frame


@pytest.fixture
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def _shot(driver, name: str) -> None:
    folder = os.environ.get("EIAD_HMI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def test_an_operator_logs_in_sees_the_line_live_and_marks_a_false_alarm(browser, tmp_path):
    page = start_page(tmp_path)
    try:
        wait = WebDriverWait(browser, 10)
        browser.get(page.url)
        wait.until(seen.url_contains("/login"))
        browser.find_element(By.ID, "user").send_keys("olga")
        browser.find_element(By.ID, "password").send_keys("wrong password")
        browser.find_element(By.ID, "submit").click()
        wait.until(seen.text_to_be_present_in_element((By.ID, "message"), "wrong user name or password"))
        _shot(browser, "hmi_login.png")
        browser.find_element(By.ID, "password").clear()
        browser.find_element(By.ID, "password").send_keys(PASSWORDS["olga"])
        browser.find_element(By.ID, "submit").click()
        wait.until(seen.text_to_be_present_in_element((By.ID, "who"), "olga (operator)"))

        # parts arrive while the page is open: they must show up without a reload
        fed = []
        for verdict, source, cls in (("OK", "cam1", None), ("NG", "cam0", "scratch"), ("NG", "cam0", "crack")):
            result, image = part(verdict, source=source, defect_class=cls)
            image = _looks_like_a_part(result, image)
            page.feed.handle(result, image)
            fed.append(result)
        crack = fed[-1]
        page.feed.handle_explanation(
            crack.inspection_id,
            "There is a crack in the centre of the image. It is small, elongated and darker than the area around "
            "it, so the part is rejected as defective.",
            {"consistent": True},
        )
        card = f'article[data-id="{crack.inspection_id}"]'
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, f"#cameras {card}")))
        wait.until(seen.text_to_be_present_in_element((By.CSS_SELECTOR, f"#cameras {card} .explanation"), "crack"))
        live = browser.find_element(By.CSS_SELECTOR, f"#cameras {card}")
        assert "NG" in live.find_element(By.CSS_SELECTOR, ".verdict").text
        assert "class crack (90 %)" in live.find_element(By.CSS_SELECTOR, ".numbers").text
        assert "consistent" in live.find_element(By.CSS_SELECTOR, ".explanation").text
        assert len(browser.find_elements(By.CSS_SELECTOR, "#strip .thumb")) == 2
        wait.until(seen.text_to_be_present_in_element((By.ID, "status"), "ok"))
        browser.find_element(By.CSS_SELECTOR, "#filters button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history tr")) == 4)  # header + 3 parts
        _shot(browser, "hmi_live.png")

        live.find_element(By.CSS_SELECTOR, "button.false-alarm").click()
        saved = tmp_path / "review" / "line1" / "cam0" / "OK" / "image" / f"{crack.inspection_id}.png"
        wait_for(saved.is_file)
        wait.until(
            seen.text_to_be_present_in_element((By.CSS_SELECTOR, f"#cameras {card} .review"), "judged false alarm")
        )
        audit = (tmp_path / "review" / "audit.jsonl").read_text()
        assert '"action": "false_alarm"' in audit and '"user": "olga"' in audit
    finally:
        page.close()


def test_a_viewer_sees_no_feedback_buttons(browser, tmp_path):
    page = start_page(tmp_path)
    try:
        result, image = part("NG")
        page.feed.handle(result, image)
        wait = WebDriverWait(browser, 10)
        browser.get(page.url + "login")
        browser.find_element(By.ID, "user").send_keys("vic")
        browser.find_element(By.ID, "password").send_keys(PASSWORDS["vic"])
        browser.find_element(By.ID, "submit").click()
        wait.until(
            seen.presence_of_element_located((By.CSS_SELECTOR, f'#cameras article[data-id="{result.inspection_id}"]'))
        )
        assert browser.find_elements(By.CSS_SELECTOR, "#cameras button.confirm") == []
    finally:
        page.close()


class _WhenDecided:
    """A sink in the station's process: when each result left the pipeline (monotonic s)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.results: list = []

    def handle(self, result, image=None) -> None:
        self.at[result.inspection_id] = time.monotonic()
        self.results.append(result)

    def close(self) -> None:
        pass


def _log_in(browser, url: str, user: str) -> None:
    browser.get(url + "login")
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(PASSWORDS[user])
    browser.find_element(By.ID, "submit").click()


@pytest.mark.mqtt
def test_a_running_station_on_a_video_shows_its_verdicts_live_and_takes_a_false_alarm(
    browser, tmp_path, tiny_artifact, mosquitto
):
    # given a station with its page on, on a real video of 12 parts (4 NG), an operator logged in
    config, truths = make_station(tmp_path, tiny_artifact, mosquitto.port, 12)
    decided = _WhenDecided()
    station = build_station(config.model_copy(update={"hmi": settings(tmp_path)}), extra_sinks={"probe": decided})
    try:
        wait = WebDriverWait(browser, 10, poll_frequency=0.02)
        _log_in(browser, station.hmi.url, "olga")
        wait.until(seen.text_to_be_present_in_element((By.ID, "who"), "olga (operator)"))
        # when the line runs
        line = threading.Thread(target=station.pipeline.run, args=(threading.Event(),))
        line.start()
        line.join(60)
        # then the newest part shows up on the open page within 1 s of its verdict, without a reload
        last = decided.results[-1]
        card = f'#cameras article[data-id="{last.inspection_id}"]'
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, card)))
        shown_after = time.monotonic() - decided.at[last.inspection_id]
        assert shown_after <= 1.0, f"the last verdict took {shown_after:.2f} s to reach the page"
        # and the NG parts are in the strip; the first one opens with its mask overlaid
        ng = [r for r in decided.results if r.verdict == "NG"]
        assert len(ng) == sum(t["label"] == "NG" for t in truths) == 4
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#strip .thumb")) == 4)
        browser.find_elements(By.CSS_SELECTOR, "#strip .thumb")[-1].click()
        detail = f'#detail article[data-id="{ng[0].inspection_id}"]'
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, detail)))
        overlay = browser.find_element(By.CSS_SELECTOR, f"{detail} img.overlay")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", overlay))
        # and the operator's "false alarm" puts the frame in the review tree with its audit line
        browser.find_element(By.CSS_SELECTOR, f"{detail} button.false-alarm").click()
        saved = tmp_path / "review" / "line-a" / "line" / "OK" / "image" / f"{ng[0].inspection_id}.png"
        wait_for(saved.is_file)
        assert cv2.imread(str(saved)).shape == (64, 64, 3)
        audit = (tmp_path / "review" / "audit.jsonl").read_text()
        assert ng[0].inspection_id in audit and '"user": "olga"' in audit
        # and the station's page refuses writes without a session or without the CSRF token
        body = {"inspection_id": ng[1].inspection_id, "action": "confirmed"}
        assert Client(station.hmi.url).request("POST", "/api/feedback", body)[0] == 401
        no_token = Client(station.hmi.url)
        no_token.login("olga")
        no_token.csrf = None
        assert no_token.request("POST", "/api/feedback", body)[0] == 403
        viewer = Client(station.hmi.url)
        viewer.login("vic")
        assert viewer.request("POST", "/api/feedback", body)[0] == 403
    finally:
        station.close()
