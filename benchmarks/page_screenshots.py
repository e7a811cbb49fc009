"""Pictures of the operator page for docs/hmi.md, from a real station on the demo's line.

    python -m benchmarks.page_screenshots --artifact demo_out/artifact --line demo_out/line --out docs/images

Runs `eiad edge demo --explain --keep-page` (the trained artifact, the line's camera
stream, explanations), logs in with the password it prints, and photographs the page in
Debian's headless chromium (apt: chromium chromium-driver): the live view and history,
then a rejected part selected from the strip. Ctrl-C (SIGINT) ends the demo afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_URL = re.compile(r"operator page: (http://\S+)\s+\(log in as 'operator', password '([^']+)'\)")


def _wait_line(process: subprocess.Popen, pattern: re.Pattern | str, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError(f"eiad edge demo ended (status {process.returncode}) before printing {pattern}")
            continue
        sys.stdout.write(line)
        found = pattern.search(line) if isinstance(pattern, re.Pattern) else (pattern in line or None)
        if found:
            return found
    raise RuntimeError(f"no {pattern} from eiad edge demo within {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--line", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--frames", type=int, default=120, help="parts to run before the pictures")
    args = parser.parse_args(argv)
    eiad = str(Path(sys.executable).parent / "eiad")
    with tempfile.TemporaryDirectory(prefix="eiad-page-shots-") as work:
        command = [eiad, "edge", "demo", "--artifact", str(args.artifact), "--line", str(args.line)]
        command += ["--out", work, "--explain", "--keep-page", "--no-progress", "--frames", str(args.frames)]
        demo = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # its lines arrive as they are printed
        )
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500"):
            options.add_argument(arg)
        browser = None
        try:
            url, password = _wait_line(demo, _URL, 120).groups()
            browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
            wait = WebDriverWait(browser, 20)
            browser.get(url)
            browser.find_element(By.ID, "user").send_keys("operator")
            browser.find_element(By.ID, "password").send_keys(password)
            args.out.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(args.out / "hmi_login.png"))
            browser.find_element(By.ID, "submit").click()
            _wait_line(demo, "the page stays up", 300)
            browser.refresh()  # the whole line's state, as an operator arriving now sees it
            wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#strip .thumb")))
            browser.find_element(By.CSS_SELECTOR, "#filters button").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history tr")) > 10)
            browser.execute_script("window.scrollTo(0, 0)")
            time.sleep(1.0)  # pictures load
            browser.save_screenshot(str(args.out / "hmi_live.png"))
            browser.find_element(By.CSS_SELECTOR, "#strip .thumb").click()
            wait.until(seen.visibility_of_element_located((By.ID, "detail-section")))
            time.sleep(0.5)
            browser.execute_script("document.getElementById('detail-section').scrollIntoView()")
            time.sleep(0.5)
            browser.save_screenshot(str(args.out / "hmi_detail.png"))
        finally:
            if browser is not None:
                browser.quit()
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
    print(f"pictures in {args.out}: hmi_login.png, hmi_live.png, hmi_detail.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
