"""``python -m src.serve`` started as a user starts it, and headless Chromium (Debian's) drawing on its page through
Selenium, for tests/test_serve.py, scripts/serve_screenshot.py and benchmarks/serve_load.py."""

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


class Server:
    """``python -m src.serve`` as a user starts it, in a session of its own (a terminal's Ctrl-C reaches its group)."""

    def __init__(self, cwd: Path, *arguments: str) -> None:
        self.port = free_port()
        self.left: list[str] = []  # what the command left behind when it returned (stop)
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "src.serve", f"port={self.port}", *arguments]
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | {"PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            # Ctrl-C as in a terminal, also where these tests were started as a script's background job (SIGINT ignored)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 90
        while self.get("/health") != (200, b"ok"):
            assert self.process.poll() is None, self.process.communicate()[0]
            assert time.monotonic() < deadline, "the server did not become healthy in 90 s"
            time.sleep(0.1)

    def request(self, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url + path, body, headers or {}), timeout=60) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, ConnectionError):
            return 0, b""

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request(path)

    def post(self, body: bytes, content_type: str = "image/png") -> tuple[int, dict]:
        status, answer = self.request("/predict", body, {"Content-Type": content_type})
        return status, json.loads(answer)

    def post_all(self, bodies: list[bytes], connections: int = 8) -> list[tuple[int, dict]]:
        """Each body posted as an image over ``connections`` kept-alive connections at once (batches fill); the answers."""

        def post_share(first: int) -> list[tuple[int, dict]]:
            connection, answers = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60), []
            for body in bodies[first::connections]:
                connection.request("POST", "/predict", body, {"Content-Type": "image/png"})
                answer = connection.getresponse()
                answers.append((answer.status, json.loads(answer.read())))
            connection.close()
            return answers

        with ThreadPoolExecutor(connections) as pool:
            shares = list(pool.map(post_share, range(connections)))
        return [shares[index % connections][index // connections] for index in range(len(bodies))]

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str, float]:
        """Ctrl-C to every process of the group, as a terminal sends it; SIGTERM to the command's own process, then to
        the group, as ``timeout`` does (``kill`` sends the first alone). The exit status, the output, the seconds it
        took."""
        started = time.monotonic()
        if signum == signal.SIGTERM:
            self.process.send_signal(signum)
        os.killpg(self.process.pid, signum)
        try:
            output = self.process.communicate(timeout=60)[0]
            self.left = in_session(self.process.pid)
        finally:  # a server that did not stop is not left serving, nor anything it started
            if self.process.poll() is None or self.left:
                with suppress(ProcessLookupError):  # what was left may have ended since
                    os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode, output, time.monotonic() - started


def in_session(session: int) -> list[str]:
    """Each process of ``session`` in the process table (an ended one not yet reaped too), as ``<pid> <state> <command>``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, _, rest = stat.read_text().partition(" (")[2].rpartition(") ")  # a name may hold spaces
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:100]
        except OSError:  # it ended meanwhile
            continue
        state, _, _, sid = rest.split()[:4]
        if int(sid) == session:
            found.append(f"{stat.parent.name} {state} ({name}) {command}")
    return found


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# This machine's network is closed: Chromium's own background connections are switched off, as is its sandbox (root).
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
FLAGS += ["--disable-background-networking", "--disable-component-update", "--window-size=1000,620"]


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
