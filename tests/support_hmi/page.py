"""A real operator page on a free port, and a small HTTP client with a cookie jar."""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from edge.access.passwords import hash_password
from edge.hmi.server import HmiServer, start_hmi
from edge.hmi.settings import HmiSettings
from edge.results import InspectionResult, Region

PASSWORDS = {"olga": "operator-pass-1", "vic": "viewer-pass-22"}
# scrypt is slow on purpose: hash once per test session
_HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}
CLASSES = ["crack", "scratch", "stain"]


def settings(tmp: Path, **overrides) -> HmiSettings:
    values = {
        "port": 0,
        "users": {
            "olga": {"role": "operator", "password_hash": _HASHES["olga"]},
            "vic": {"role": "viewer", "password_hash": _HASHES["vic"]},
        },
        "data_dir": str(tmp / "hmi"),
        "review_dir": str(tmp / "review"),
        **overrides,
    }
    return HmiSettings.model_validate(values)


def start_page(tmp: Path, health=None, **overrides) -> HmiServer:
    about = {"line": "line1", "station": "st1", "model_id": "tiny@test", "class_names": CLASSES}
    return start_hmi(settings(tmp, **overrides), Path, "line1", health or (lambda: {"status": "ok"}), about)


_counter = iter(range(1, 10**9))


def part(
    verdict: str = "NG", source: str = "cam0", defect_class: str | None = "crack"
) -> tuple[InspectionResult, np.ndarray]:
    """A result and its frame: a grey 64x48 image; NG parts get a white square in the mask."""
    n = next(_counter)
    image = np.full((48, 64, 3), 90 + n % 50, np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    regions = ()
    if verdict == "NG":
        mask[10:20, 30:40] = 255
        regions = (Region((30, 10, 39, 19), 100, 0.97),)
    now = time.monotonic_ns()
    result = InspectionResult(
        inspection_id=f"st1-{source}-{1_700_000_000_000_000_000 + n}-{n}",
        sequence=n,
        source_id=source,
        frame_id=n,
        verdict=verdict,
        score=0.95 if verdict == "NG" else 0.05,
        defect_class=defect_class if verdict == "NG" else None,
        class_confidence=0.9 if verdict == "NG" else 0.0,
        regions=regions,
        model_id="tiny@test",
        captured_unix_s=time.time(),
        stamps_ns={"captured": now - 4_000_000, "decided": now},
        mask=mask if verdict != "REJECTED" else None,
    )
    return result, image


def wait_for(condition, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class Client:
    """A browser stand-in: cookies kept, JSON in and out; returns (status, body)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self._open = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()).open
        self.csrf: str | None = None

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.csrf and method == "POST":
            all_headers["X-CSRF-Token"] = self.csrf
        all_headers.update(headers or {})
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
        try:
            with self._open(request, timeout=10) as response:
                return response.status, _decode(response.read(), response.headers), response.headers
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read(), error.headers), error.headers

    def login(self, user: str, password: str | None = None):
        status, body, _ = self.request("POST", "/api/login", {"user": user, "password": password or PASSWORDS[user]})
        if status == 200:
            self.csrf = body["csrf"]
        return status, body


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _decode(raw: bytes, headers):
    if "application/json" in headers.get("Content-Type", ""):
        return json.loads(raw or b"null")
    return raw
