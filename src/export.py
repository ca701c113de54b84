"""``python -m src.export ckpt_path=<file> format=onnx|torchscript``: the trained network as a standalone file, taking
normalized images ``(batch, 1, 28, 28)`` and returning the 10 logits. Before success is reported the file is loaded back
(onnxruntime, ``torch.jit.load``) and must reproduce the checkpoint's logits on test images within ``tolerance``."""

import gc

if __name__ == "__main__":  # run as a command: no garbage collection during the imports (src/train.py says why)
    gc.disable()

import os
import warnings
from pathlib import Path
from typing import Annotated, Literal

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from pydantic import Field, validate_call

from src import checkpoints, cli, config
from src.cli import ConfigError, exit_with_error
from src.data.mnist import MNISTDataModule


class ExportMismatch(RuntimeError):
    """The exported file does not reproduce the checkpoint's logits; nothing was written."""


@validate_call
def export(
    ckpt_path: str | None,
    format: Literal["onnx", "torchscript"] = "onnx",
    out: str | None = None,
    check_images: Annotated[int, Field(ge=1)] = 256,
    tolerance: Annotated[float, Field(gt=0)] = 1e-4,
    log_dir: str = "lightning_logs",
) -> tuple[Path, float, int]:
    """Write the exported model; its path, the largest logit difference from the checkpoint, and on how many test
    images. A temporary file is moved into place once it passed: a failed export leaves an earlier file."""
    if format == "onnx":  # torch's ONNX exporter and the check's runtime
        config.require_extra("format=onnx", "export", "onnx", "onnxscript", "onnxruntime")
    checkpoint = checkpoints.needed(ckpt_path, Path(log_dir))
    state = checkpoints.read(checkpoint)
    target = Path(out) if out else checkpoints.run_folder(checkpoint) / "exported"
    if not out or out.endswith(("/", os.sep)) or target.is_dir():  # a folder (or none: the run's): model.onnx or .pt in it
        target /= "model.onnx" if format == "onnx" else "model.pt"
    if target.exists() and not target.is_file():  # a device or a pipe: os.replace would put the model in its place
        raise ConfigError(f"out={out}: not a regular file; give out=<a file path or a folder>")
    suffixes = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript"}
    if (other := suffixes.get(target.suffix, format)) != format:  # model.pt holding ONNX: torch.jit.load refuses it later
        ours = next(suffix for suffix, kind in suffixes.items() if kind == format)
        raise ConfigError(f"out={out}: a {target.suffix} file is {other}'s; add format={other}, or name it *{ours}")
    net = checkpoints.trained_network(state, checkpoint)
    test = MNISTDataModule(**state["datamodule_hyper_parameters"] | {"loader": "device", "num_workers": 0})
    test.prepare_data()  # the official test images, normalized as the checkpoint's training data was
    test.setup("test")
    images = test.splits["test"][0][:check_images].cpu()
    with torch.no_grad():
        expected = net(images).numpy()
    new_folders = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"out={out or target}: cannot create its folder ({error.strerror}); give out=<a writable path>"
        ) from error
    if not config.writable(target.parent):
        raise ConfigError(f"out={out}: cannot write to {target.parent}; give out=<a writable path>")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        got = write_and_run(net, images, format, partial)
        difference = float(np.abs(got - expected).max())
        if difference > tolerance:
            raise ExportMismatch(
                f"tolerance={tolerance:g}: the exported model's logits differ from the checkpoint's by up to "
                f"{difference:.2e}; nothing was written (a larger tolerance accepts it)"
            )
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        for folder in new_folders:  # the deepest first
            folder.rmdir()
        raise
    return target, difference, len(images)


def write_and_run(net: torch.nn.Module, images: torch.Tensor, format: str, path: Path) -> np.ndarray:
    """Export ``net`` to ``path``, load that file back and return its logits on ``images``."""
    if format == "onnx":
        import onnxruntime

        batch = {"images": {0: torch.export.Dim("batch")}}
        torch.onnx.export(
            net, (images[:2],), str(path), input_names=["images"], output_names=["logits"], dynamic_shapes=batch, verbose=False
        )
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"images": images.numpy()})[0]
    with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript; this command still writes it, on purpose
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        torch.jit.save(torch.jit.trace(net, images[:2]), str(path))
        with torch.no_grad():
            return torch.jit.load(str(path)).eval()(images).numpy()


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@cli.task
def main(cfg: DictConfig) -> None:
    try:
        path, difference, checked = config.call(export, cfg)
    except ExportMismatch as error:
        exit_with_error(error, status=1)
    print(f"{path}: {cfg.format} model; on {checked} test images its logits match the checkpoint's within {difference:.1e}")


if __name__ == "__main__":
    cli.run(main)
