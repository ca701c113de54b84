"""``python -m src.serve ckpt_path=<file>|last``: a trained network behind a LitServe endpoint, and a page to draw on.
``POST /predict`` takes a PNG/JPEG body, a multipart upload or JSON pixels; LitServe's own ``GET /info`` tells the
checkpoint, data set, network and test accuracy."""

import gc

if __name__ == "__main__":  # run as a command: no garbage collection during the imports (src/train.py says why)
    gc.disable()

import logging
import os
import signal
import socket
from multiprocessing import resource_tracker
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import hydra
import torch
from omegaconf import DictConfig
from pydantic import Field

from src import checkpoints, cli, config, runs
from src.cli import ConfigError, command, setting, shown_path

if TYPE_CHECKING:
    import litserve as ls

PAGE = Path(__file__).with_name("serving") / "page.html"


def check(host: str, port: int, accelerator: str) -> None:
    """What this machine must offer: LitServe installed, the accelerator, the port free (before the network loads)."""
    config.require_extra("src.serve", "serve", "litserve", "python_multipart")  # FastAPI and Starlette come with LitServe
    present = {"gpu": torch.cuda.is_available, "cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if accelerator in present and not present[accelerator]():
        raise ConfigError(f"accelerator={accelerator}: this machine has none; use accelerator=cpu or accelerator=auto")
    try:
        socket.create_server((host, port)).close()
    except OSError as error:
        raise ConfigError(
            f"port={port}: cannot listen on {host}:{port} ({error.strerror}); give another port= (or stop what uses it)"
        ) from None


def describe(checkpoint: Path, classifier: checkpoints.PixelClassifier, state: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /info`` tells and the command prints: with the test accuracy src.train recorded for the run."""
    result = runs.run_result(checkpoints.run_folder(checkpoint))
    return {
        "checkpoint": shown_path(checkpoint),
        "data_set": classifier.data_set.title,
        "classes": list(classifier.data_set.classes),
        "network": state["hyper_parameters"]["model"],
        "parameters": sum(p.numel() for p in classifier.parameters()),
        **{key: result.get(key) for key in ("test_acc", "test_images", "tested_checkpoint")},
    }


def accuracy_line(info: dict[str, Any], checkpoint: Path) -> str:
    if info["test_acc"] is None:
        measure = command("python", "-m", "src.eval", setting("ckpt_path", checkpoint))
        return f"test accuracy    not recorded for its run; measure it: {measure}"
    measured = f"{info['test_acc']:.4f} on {info['test_images']:,} test images"
    if info["tested_checkpoint"] == checkpoint.name:
        return f"test accuracy    {measured}"
    tested = info["tested_checkpoint"] or "its final weights"
    return f"test accuracy    {measured}, measured on {tested} of this run (this file: src.eval ckpt_path=<it>)"


def build(classifier: checkpoints.PixelClassifier, info: dict[str, Any], accelerator: str, **limits: Any) -> "ls.LitServer":
    """LitServe's server: the classifier API (batching), the request checks in front of it (sizes), the page at ``/``."""
    import litserve as ls  # the `serve` extra, imported once check() has found it
    from fastapi.responses import HTMLResponse

    from src.serving.api import ClassifierAPI
    from src.serving.requests import PredictRequests

    api = ClassifierAPI(classifier, limits.pop("max_batch_size"), limits.pop("batch_timeout"))
    checks = (PredictRequests, {"path": api.api_path, "data_set": classifier.data_set, **limits})
    server = ls.LitServer(api, accelerator=accelerator, devices=1, model_metadata=info, middlewares=[checks])
    page = PAGE.read_text()
    # LitServe answers "/" itself ("litserve running"), registered before any route of ours: the page takes its place.
    server.app.router.routes[:] = [route for route in server.app.routes if getattr(route, "path", None) != "/"]
    server.app.add_api_route("/", lambda: HTMLResponse(page), methods=["GET"], include_in_schema=False)
    return server


def report(host: str, port: int, checkpoint: Path, info: dict[str, Any]) -> None:
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)  # where this machine reaches it
    address = f"http://{host}:{port}"
    classes = (" " if info["data_set"] == "MNIST" else ", ").join(info["classes"])
    print(
        f"serving          {shown_path(checkpoint)}: {info['data_set']}, {len(info['classes'])} classes ({classes})\n"
        f"{accuracy_line(info, checkpoint)}\n"
        f"page             {address}/\n"
        f"predict          curl -s --data-binary @digit.png {address}/predict\n"
        f"info             {address}/info   (health: {address}/health)\n"
        "stop             Ctrl-C",
        flush=True,
    )


def stop_on_sigterm() -> None:
    """SIGTERM (kill, docker stop) stops the server as Ctrl-C does, LitServe's processes with it; in those (forked with
    this handler) the signal uvicorn raises again once it has shut down is a quiet exit."""
    serving = os.getpid()

    def terminate(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: `timeout` signals the process, then its group, mid shut-down
        if os.getpid() != serving:
            raise SystemExit(0)
        logging.disable()  # a SIGTERM to the group also ends LitServe's manager process, which its monitor then logs
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)


def serve(
    ckpt_path: str | None,
    log_dir: str = "lightning_logs",
    host: Literal["127.0.0.1", "0.0.0.0", "::"] = "127.0.0.1",
    port: Annotated[int, Field(ge=1024, le=65535)] = 8000,
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto",
    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = 32,
    batch_timeout: Annotated[float, Field(ge=0, le=10)] = 0.005,
    max_bytes: Annotated[int, Field(ge=1)] = 4_000_000,
    max_pixels: Annotated[int, Field(ge=1)] = 16_000_000,
) -> None:
    """Serve the checkpoint until Ctrl-C or SIGTERM; host, port and batching as LitServe takes them."""
    check(host, port, accelerator)
    checkpoint = checkpoints.needed(ckpt_path, Path(log_dir))
    state = checkpoints.read(checkpoint)
    classifier = checkpoints.PixelClassifier(state, checkpoint)
    info = describe(checkpoint, classifier, state)
    batching = {"max_batch_size": max_batch_size, "batch_timeout": batch_timeout}
    server = build(classifier, info, accelerator, **batching, max_bytes=max_bytes, max_pixels=max_pixels)
    report(host, port, checkpoint, info)
    stop_on_sigterm()
    server.run(host=host, port=port, log_level="warning", generate_client_file=False)
    logging.disable()  # LitServe's monitoring thread outlives run() and logs a BrokenPipeError once it has shut down
    resource_tracker._resource_tracker._stop()  # LitServe does not join the tracker its spawned worker launched
    print("stopped")


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
@cli.task
def main(cfg: DictConfig) -> None:
    config.call(serve, cfg)


if __name__ == "__main__":
    cli.run(main)
