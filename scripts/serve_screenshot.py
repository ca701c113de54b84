"""The README's picture of the page: ``python -m scripts.serve_screenshot <checkpoint> [out.png]`` starts
``python -m src.serve`` on it, has headless Chromium draw the first real MNIST test digit (a 7) on the canvas as a
pointer would, and saves what the page then shows (default: docs/serve-page.png). Needs chromium and chromium-driver."""

import sys
from pathlib import Path

from torchvision.datasets import MNIST

from tests.serving import REPO, Server, draw_digit, open_page, read_bars


def main(checkpoint: str, out: Path) -> None:
    digit = MNIST(str(REPO / "data"), train=False).data[0].numpy()
    server = Server(REPO, f"ckpt_path={checkpoint}")
    try:
        with open_page(server.url) as browser:
            draw_digit(browser, digit)
            shown, bars = read_bars(browser)
            browser.save_screenshot(str(out))
    finally:
        server.stop()
    print(f"{out}: the page reads {shown} ({bars[shown]:.1%})")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m scripts.serve_screenshot <checkpoint> [out.png]")
    main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) == 3 else REPO / "docs" / "serve-page.png"))
