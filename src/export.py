"""``python -m src.export ckpt_path=<file> format=onnx|torchscript``: the trained network as a standalone file.

The exported model takes normalized images ``(batch, 1, 28, 28)`` (any batch size) and returns the 10 logits. Before
the command reports success, the exported file is loaded back (onnxruntime for ONNX, ``torch.jit.load`` for
TorchScript) and must reproduce the checkpoint's logits on a batch of test images within ``tolerance``.
"""

import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from src import checkpoints
from src.cli import USER_ERRORS, ConfigError, checked_command_line, exit_on_error
from src.data.mnist import MNISTDataModule
from src.models.classifier import Classifier

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


def test_images(checkpoint: Path, count: int) -> torch.Tensor:
    """The first ``count`` official test images, normalized as the checkpoint's training data was."""
    datamodule = MNISTDataModule(**checkpoints.read(checkpoint)["datamodule_hyper_parameters"] | {"loader": "device"})
    datamodule.prepare_data()
    datamodule.setup("test")
    return datamodule.splits["test"][0][:count]


def export(
    ckpt_path: str, format: str, out: str | None = None, check_images: int = 256, tolerance: float = 1e-4
) -> tuple[Path, float]:
    """Write the exported model and return its path and the largest logit difference from the checkpoint."""
    if format not in SUFFIXES:
        raise ConfigError(f"format={format}: unknown; use one of {', '.join(SUFFIXES)}")
    checkpoint = checkpoints.existing(ckpt_path)
    target = Path(out) if out else checkpoints.run_folder(checkpoint) / "exported" / f"model{SUFFIXES[format]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    net = Classifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).net.eval()
    images = test_images(checkpoint, check_images).cpu()
    with torch.no_grad():
        expected = net(images).numpy()
    if format == "onnx":
        import onnxruntime

        batch = torch.export.Dim("batch")
        program = torch.onnx.export(
            net,
            (images[:2],),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes={"images": {0: batch}},
            dynamo=True,
        )
        program.save(str(target))
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": images.numpy()})[0]
    else:
        torch.jit.save(torch.jit.trace(net, images[:2]), str(target))
        with torch.no_grad():
            got = torch.jit.load(str(target)).eval()(images).numpy()
    difference = float(np.abs(got - expected).max())
    if difference > tolerance:
        raise RuntimeError(f"{target}: the exported model differs from the checkpoint by {difference:.2e} > {tolerance:g}")
    return target, difference


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    try:
        path, difference = export(cfg.ckpt_path, cfg.format, cfg.out, cfg.check_images, cfg.tolerance)
    except USER_ERRORS as error:
        exit_on_error(error)
    print(
        f"{path}: {cfg.format} model; on {cfg.check_images} test images its logits match the checkpoint's within {difference:.1e}"
    )


if __name__ == "__main__":
    checked_command_line("export")
    sys.exit(main())
