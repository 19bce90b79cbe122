"""A real browser for tests: Debian's headless Chromium driven by selenium, or a skip with the reason.

The `browser` fixture (registered in tests/conftest.py) gives a selenium WebDriver with Chrome's
performance log switched on, so a test can list every request the page made (`request_urls(driver)`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator

import pytest

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1800",
)


def find_chromium() -> tuple[str, str]:
    """(chromium binary, chromedriver binary), or skip the test saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]'")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("no Chromium/chromedriver on PATH: .ci/run installs them as root "
                    "(apt-get install chromium chromium-driver)")
    return binary, driver


def start_chromium(user_data_dir: str):
    """A headless Chromium WebDriver with an empty profile in `user_data_dir` and the performance log on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as exc:  # a broken install: say why instead of failing every test
        pytest.skip(f"Chromium did not start: {str(exc).splitlines()[0]}")


@pytest.fixture
def browser() -> Iterator:
    """A fresh headless Chromium for one test, closed afterwards."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        driver = start_chromium(profile)
        # Chromium's own start page is not the test's: begin with an empty log.
        driver.get("about:blank")
        request_urls(driver)
        try:
            yield driver
        finally:
            driver.quit()


def request_urls(driver) -> list[str]:
    """Every URL the browser has requested since the last call (from Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
