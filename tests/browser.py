"""A real browser for the dashboard's tests: Debian's headless Chromium through its
ChromeDriver, driven by Selenium (told where both are, so it downloads nothing).

`chromium(...)` opens one; `Page` wraps it with what the tests do over and over (wait for
a condition, read text, take a screenshot into SCREENSHOTS). Chromium starts with its
background networking off: it reaches nothing but the api under test.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.helpers import ROOT

CHROMIUM = os.environ.get("TASKMILL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TASKMILL_CHROMEDRIVER", "/usr/bin/chromedriver")
# Where each run leaves its screenshots (ignored by git; the README's copies are in docs/).
SCREENSHOTS = ROOT / ".local" / "screenshots"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-domain-reliability", "--disable-features=Translate,MediaRouter,OptimizationHints",
         "--metrics-recording-only", "--hide-scrollbars", "--force-device-scale-factor=1"]


def installed() -> str | None:
    """Why no browser can run here, or None when Chromium and ChromeDriver are installed."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    return f"{', '.join(missing)} not installed (scripts/infra.sh install)" if missing else None


def chromium(width: int = 1280, height: int = 860, zone: str = "UTC") -> webdriver.Chrome:
    """A headless Chromium of its own (a new profile), its clock in `zone`, its console
    kept (`get_log("browser")`)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="taskmill-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, env={**os.environ, "TZ": zone})
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.profile_dir = profile  # type: ignore[attr-defined]
    return driver


def close(driver: webdriver.Chrome) -> None:
    driver.quit()
    shutil.rmtree(driver.profile_dir, ignore_errors=True)  # type: ignore[attr-defined]


class Page:
    """The dashboard in a browser, at `base` (the api's address)."""

    def __init__(self, driver: webdriver.Chrome, base: str, timeout_s: float = 20) -> None:
        self.driver = driver
        self.base = base
        self.timeout_s = timeout_s

    def open(self, hash_: str = "") -> None:
        self.driver.get(f"{self.base}/ui{hash_}")

    def go(self, hash_: str) -> None:
        """Move within the open dashboard, as a click on a link would."""
        self.driver.execute_script("location.hash = arguments[0]", hash_)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, what: str, condition: Callable[[], Any], timeout_s: float | None = None) -> Any:
        """Wait until condition() is truthy (a vanished element counts as not yet); its value."""
        def attempt(_: Any) -> Any:
            try:
                return condition()
            except StaleElementReferenceException:
                return None
        return WebDriverWait(self.driver, timeout_s or self.timeout_s, poll_frequency=0.1
                             ).until(attempt, message=f"waiting for {what}")

    def wait_css(self, css: str, timeout_s: float | None = None) -> WebElement:
        return self.wait(f"{css} on the page",
                         lambda: next(iter(self.all(css)), None), timeout_s)

    def wait_text(self, css: str, text: str, timeout_s: float | None = None) -> WebElement:
        """Wait until an element matching css holds text; that element."""
        def found() -> WebElement | None:
            return next((e for e in self.all(css) if text in e.text), None)
        return self.wait(f"{text!r} in {css}", found, timeout_s)

    def sign_in(self, token: str) -> None:
        field = self.wait_css("#token")
        field.clear()
        field.send_keys(token)
        self.find("#sign-in").click()

    def screenshot(self, name: str) -> Path:
        """Save what the browser shows as SCREENSHOTS/<name>.png, in a palette of 64
        colours (a page of flat colours loses nothing that shows, and weighs a third)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        shot = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        shot.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        return path

    def refused(self) -> list[str]:
        """What the browser refused to load or run since the last call (the Content-
        Security-Policy's refusals, scripts that threw)."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]
