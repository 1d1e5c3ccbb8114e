"""The report in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium) loads
the page, draws every section and every figure, logs no error, fetches nothing, and renders it to a PNG.

Set OC_REPORT_SCREENSHOTS=DIR to keep the PNGs for a person to look at."""

import os
import shutil
from pathlib import Path

import pytest

from oc_synth.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="needs Chromium and its driver: as root, bash scripts/install.sh --dev (Debian/Ubuntu: "
                              "apt-get install chromium chromium-driver)"),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e .[dev])")

SECTION_IDS = ["overview", "funnel", "languages", "dedup", "recall", "synthesis", "training", "eval"]
# Headless and quiet: no GPU, no sandbox (we run as root in CI), no network side traffic, a fresh profile per test.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")
WIDTH = 1200


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_argument(f"--window-size={WIDTH},900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver is named explicitly: Selenium would otherwise try to download one
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def load(driver, page: Path) -> None:
    driver.get(page.as_uri())
    state = driver.execute_script("return document.readyState")
    assert state == "complete", state


def errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver, path: Path) -> Path:
    """The whole page as one PNG (the window grown to the page's height)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, height)
    assert driver.save_screenshot(str(path))
    keep = os.environ.get("OC_REPORT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_every_section_and_figure_renders_without_errors(full_run, browser, tmp_path):
    page = build_report(full_run, tmp_path / "report.html").path
    load(browser, page)
    from selenium.webdriver.common.by import By

    for sid in SECTION_IDS:
        sec = browser.find_element(By.ID, sid)
        assert sec.is_displayed(), sid
        assert sec.get_attribute("data-has-data") == "true", sid
        assert sec.find_element(By.TAG_NAME, "h2").text.strip(), sid
        imgs = sec.find_elements(By.TAG_NAME, "img")
        assert imgs, f"{sid}: no figure"
        for img in imgs:  # decoded by the browser, with a real size
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 200
            assert img.is_displayed()
    assert not errors(browser)
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in fetched if not u.startswith("data:")] == []
    # the navigation reaches each section
    links = [a.get_attribute("href").rsplit("#", 1)[1] for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert links == SECTION_IDS
    shot = screenshot(browser, tmp_path / "report_full_run.png")
    width, height = png_size(shot)
    assert width == WIDTH and height > 3000  # eight sections of figures, not an error page


def test_a_run_without_outputs_renders_every_section_with_what_is_missing(browser, tmp_path):
    (tmp_path / "empty").mkdir()
    page = build_report(tmp_path / "empty", tmp_path / "report.html").path
    load(browser, page)
    from selenium.webdriver.common.by import By

    for sid in SECTION_IDS:
        note = browser.find_element(By.CSS_SELECTOR, f"#{sid} p.missing")
        assert note.is_displayed() and note.text.startswith("Not in this run:"), sid
    assert not errors(browser)
    screenshot(browser, tmp_path / "report_empty_run.png")


def test_the_error_check_sees_a_broken_page(browser, tmp_path):
    """The console check above can fail: a page with a missing image logs an error Chromium reports."""
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><img src="missing.png"></body></html>')
    load(browser, broken)
    assert any("missing.png" in e["message"] for e in errors(browser))
