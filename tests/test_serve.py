"""``python -m src.serve``: the real server on a free port, real MNIST digits, bad requests beside good ones, the page
in a real browser, and the refusals before it starts."""

import json
import shutil
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from src.checkpoints import PixelClassifier
from src.data.datasets import FASHION_MNIST
from src.predict import predict
from tests.conftest import REAL_DATA_DIR, trained_once, tree
from tests.serving import Server, png
from tests.test_images import reference, save_in_every_mode

pytestmark = pytest.mark.slow  # real servers, real MNIST and a network trained on it

LIMITS = ["max_bytes=300000", "max_pixels=1000000"]


def multipart(name: str, filename: str | None, content: bytes) -> tuple[bytes, str]:
    boundary = "test-boundary-4f2a"
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    body = f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: image/png\r\n\r\n".encode()
    return body + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def digits(real_run, tmp_path_factory) -> tuple[torch.Tensor, torch.Tensor, list]:
    """24 real test digits, their labels, and what src.predict reads in each as a PNG file."""
    from torchvision.datasets import MNIST

    test, folder = MNIST(str(REAL_DATA_DIR), train=False), tmp_path_factory.mktemp("digits")
    for index, pixels in enumerate(test.data[:24].numpy()):
        (folder / f"{index:02d}.png").write_bytes(png(pixels))
    return test.data[:24], test.targets[:24], predict(real_run["best_checkpoint"], str(folder))


@pytest.fixture(scope="module")
def served(real_run, tmp_path_factory) -> Iterator[tuple[Server, Path]]:
    """The real run's best checkpoint served at max_batch_size=32, from a working folder of its own."""
    cwd = tmp_path_factory.mktemp("serve_cwd")
    checkpoint = Path(real_run["best_checkpoint"])
    server = Server(cwd, f"ckpt_path={checkpoint}", "max_batch_size=32", "batch_timeout=0.05", *LIMITS)
    yield server, checkpoint
    code, output, _ = server.stop(signal.SIGTERM)  # kill, timeout, docker stop: the server and what it started end
    assert code == 0 and "Traceback" not in output and output.rstrip().endswith("stopped"), output
    assert server.left == []  # the command returned once every process it started had ended
    assert server.get("/health")[0] == 0  # nothing left serving
    assert tree(cwd) == {}  # LitServe's client.py is not written into the user's folder


def test_answers_match_src_predict_and_the_checkpoints_own_network(served, digits) -> None:
    server, checkpoint = served
    images, labels, expected = digits
    classifier = PixelClassifier(torch.load(checkpoint, weights_only=True), checkpoint)
    answers = [server.post(path.read_bytes()) for path, _, _ in expected]
    assert all(status == 200 for status, _ in answers)
    assert [answer["name"] for _, answer in answers] == [name for _, name, _ in expected]
    for (_, answer), (_, _, probabilities) in zip(answers, expected, strict=True):
        assert answer["probabilities"] == pytest.approx(probabilities, abs=1e-5)
        with torch.no_grad():  # the network on the very image the answer says it saw
            own = classifier(torch.tensor([answer["image"]]))[0]
        assert answer["probabilities"] == pytest.approx(own.tolist(), abs=1e-5)
    assert sum(answer["class"] == label for (_, answer), label in zip(answers, labels.tolist(), strict=True)) >= 22
    pixels = (images[:4].float() / 255).numpy()
    with torch.no_grad():  # JSON pixels are used as MNIST stores them: the checkpoint's own logits on the test tensor
        own = classifier(torch.from_numpy(pixels))
    for one, probabilities in zip(pixels, own, strict=True):
        status, answer = server.post(json.dumps({"pixels": one.tolist()}).encode(), "application/json")
        assert status == 200 and answer["probabilities"] == pytest.approx(probabilities.tolist(), abs=1e-5)
    body, content_type = multipart("file", "digit.png", png(images[0].numpy()))
    assert server.post(body, content_type)[1]["probabilities"] == answers[0][1]["probabilities"]


def test_every_mode_pillow_opens_reads_as_its_8_bit_image_in_src_predict_and_the_server(served, tmp_path) -> None:
    """60 real test digits in each mode (16-bit, 32-bit, float, palette, see-through, CMYK, 1-bit): src.predict and the
    server read each as its 8-bit file, to the same 28x28 image."""
    from torchvision.datasets import MNIST

    server, checkpoint = served
    for index, pixels in enumerate(MNIST(str(REAL_DATA_DIR), train=False).data[:60].numpy()):
        save_in_every_mode(pixels, tmp_path / f"{index:02d}")
    files = sorted(tmp_path.iterdir())
    predicted = {path.name: name for path, name, _ in predict(str(checkpoint), str(tmp_path))}
    answers = dict(zip([path.name for path in files], server.post_all([path.read_bytes() for path in files]), strict=True))
    assert {status for status, _ in answers.values()} == {200}
    wrong = Counter()
    for path in files:
        mode, expected = path.name.partition("-")[2], reference(path).name
        (_, answer), (_, right) = answers[path.name], answers[expected]
        wrong[f"{mode} src.predict"] += predicted[path.name] != predicted[expected]
        wrong[f"{mode} server"] += answer["name"] != right["name"]
        wrong[f"{mode} image"] += answer["image"] != right["image"]
    assert +wrong == Counter()  # of the 60 digits, how many each mode reads otherwise than its 8-bit file


def test_health_info_and_the_page(served, real_run) -> None:
    server, checkpoint = served
    assert server.get("/health") == (200, b"ok")
    status, body = server.get("/info")
    model = json.loads(body)["model"]
    assert status == 200 and model["data_set"] == "MNIST" and model["classes"] == [str(d) for d in range(10)]
    assert model["test_acc"] == pytest.approx(real_run["test_acc"]) and model["tested_checkpoint"] == checkpoint.name
    assert model["network"]["hidden"] == [512, 512, 512] and model["parameters"] == 932_362
    status, page = server.get("/")
    assert status == 200 and b'<canvas id="canvas"' in page
    assert b"http" not in page and b"<link" not in page and b" src=" not in page  # nothing fetched from elsewhere


def test_each_bad_request_gets_its_own_4xx_and_the_server_keeps_serving(served, digits) -> None:
    server, _ = served
    good = png(digits[0][0].numpy())
    no_file = multipart("note", None, b"hello")
    bad = {
        "not an image": (b"GIF89a... not really", "image/png", 415),
        "text": (b"hello", "text/plain", 415),
        "empty body": (b"", "image/png", 400),
        "over max_bytes": (bytes(300_001), "image/png", 413),
        "over max_pixels": (png(np.zeros((1000, 1001), np.uint8)), "image/png", 413),
        "broken JSON": (b'{"pixels": [[0.1,', "application/json", 422),
        "wrong shape": (json.dumps({"pixels": [[0.0] * 28] * 27}).encode(), "application/json", 422),
        "out of range": (json.dumps({"pixels": [[2.0] * 28] * 28}).encode(), "application/json", 422),
        "a string": (json.dumps({"pixels": "seven"}).encode(), "application/json", 422),
        "multipart without a file": (*no_file, 422),
        "broken multipart": (b"--x\r\nnonsense", "multipart/form-data; boundary=x", 422),
    }
    for name, (body, content_type, expected) in bad.items():
        status, answer = server.post(body, content_type)
        assert status == expected, (name, status, answer)
        assert list(answer) == ["detail"] and "\n" not in answer["detail"], (name, answer)
        assert server.post(good)[0] == 200, name
    assert server.get("/no/such/route")[0] == 404 and server.get("/predict")[0] == 405
    assert server.post(good)[1]["class"] == digits[1][0].item()


def test_good_and_bad_requests_batched_together(served, digits) -> None:
    """At max_batch_size=32, 40 good and 24 bad requests at once: every bad one 4xx, every good one 200 and right."""
    (server, _), (images, _, right) = served, digits
    requests = [(png(images[i % 24].numpy()), "image/png", i % 24) for i in range(40)]
    requests += [(b"not an image", "image/png", None), (json.dumps({"pixels": [[9]]}).encode(), "application/json", None)] * 12
    order = np.random.default_rng(0).permutation(len(requests))
    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(lambda i: server.post(*requests[i][:2]), order))
    for i, (status, answer) in zip(order, answers, strict=True):
        index = requests[i][2]
        if index is None:
            assert status in (415, 422), answer
        else:
            assert status == 200 and answer["name"] == right[index][1], (status, answer)


def test_a_fashion_mnist_checkpoint_answers_with_names_and_ctrl_c_stops_it_cleanly(tiny_mnist, tmp_path) -> None:
    run = trained_once(tiny_mnist, tmp_path / "logs", "data.dataset=fashion_mnist", "trainer.max_epochs=1")
    server = Server(tmp_path, f"ckpt_path={run['best_checkpoint']}", "max_batch_size=1")
    status, answer = server.post(png(np.full((50, 30), 200, np.uint8)))
    assert status == 200 and answer["name"] in FASHION_MNIST.classes and answer["name"] == FASHION_MNIST.classes[answer["class"]]
    assert len(answer["probabilities"]) == 10 and np.array(answer["image"]).shape == (28, 28)
    assert json.loads(server.get("/info")[1])["model"]["classes"] == list(FASHION_MNIST.classes)
    code, output, seconds = server.stop()
    assert code == 0 and seconds < 15 and "Traceback" not in output and output.rstrip().endswith("stopped"), output
    assert server.left == []  # the command returned once every process it started had ended
    assert "Fashion-MNIST, 10 classes (T-shirt/top, Trouser" in output and "test accuracy    0." in output
    socket.create_server(("127.0.0.1", server.port)).close()  # the port is free again


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no browser: apt-get install chromium chromium-driver")
def test_drawing_a_digit_on_the_page_in_chromium_shows_its_class(served, digits) -> None:
    """Headless Chromium drags the pointer along a real test digit's rows of ink on the canvas; the page shows what the
    network read and its ten bars."""
    from tests.serving import draw_digit, open_page, read_bars

    (server, _), (images, labels, _) = served, digits
    index = labels.tolist().index(7)
    with open_page(server.url) as browser:
        draw_digit(browser, images[index].numpy())
        shown, bars = read_bars(browser)
    assert shown == 7 and max(range(10), key=lambda digit: bars[digit]) == 7 and abs(sum(bars.values()) - 1) < 1e-3
