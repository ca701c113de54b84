"""Headless Chromium (Debian's chromium and chromium-driver) through Selenium: the page's test and the README's
screenshot (scripts/serve_screenshot.py) draw on the page as a user's pointer would."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

# This machine's network is closed: Chromium's own background connections are switched off, as is its sandbox (root).
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
FLAGS += ["--disable-background-networking", "--disable-component-update", "--window-size=1000,560"]


@contextmanager
def open_page(url: str, chromium: str = "/usr/bin/chromium", driver: str = "/usr/bin/chromedriver") -> Iterator[WebDriver]:
    """The page at ``url``, once it has read the model's ``/info``."""
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in [*FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        browser = webdriver.Chrome(options=options, service=Service(driver))
        try:
            browser.get(url + "/")
            WebDriverWait(browser, 30).until(lambda page: page.execute_script("return document.body.dataset.ready") == "true")
            yield browser
        finally:
            browser.quit()


def draw_digit(browser: WebDriver, pixels: np.ndarray, ink: int = 128) -> None:
    """Drag the pointer along each row's runs of ink of a 28x28 digit, scaled to the 280x280 canvas; wait for the
    page's answer to the finished drawing."""
    canvas = browser.find_element(By.ID, "canvas")
    scale = canvas.size["width"] / pixels.shape[1]

    def offset(row: int, column: int) -> tuple[int, int]:  # Selenium's offsets are from the element's centre
        return round((column + 0.5) * scale - canvas.size["width"] / 2), round((row + 0.5) * scale - canvas.size["height"] / 2)

    actions = ActionChains(browser, duration=0)
    for row, line in enumerate(pixels >= ink):
        columns = np.flatnonzero(line)
        for run in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if len(columns) else []:
            actions.move_to_element_with_offset(canvas, *offset(row, run[0])).click_and_hold()
            actions.move_to_element_with_offset(canvas, *offset(row, run[-1])).release()
    actions.perform()
    WebDriverWait(browser, 30).until(lambda page: page.execute_script("return document.body.dataset.busy") == "false")


def read_bars(browser: WebDriver) -> tuple[int, dict[int, float]]:
    """The class the page shows and the probability of each bar."""
    shown = int(browser.find_element(By.ID, "prediction").get_attribute("data-class"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#bars .row")
    return shown, {int(row.get_attribute("data-class")): float(row.get_attribute("data-probability")) for row in rows}
