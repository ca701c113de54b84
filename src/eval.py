"""``python -m src.eval ckpt_path=<file>``: a trained checkpoint on the official 10k test images of its data set.

Prints test accuracy and loss and each class's accuracy, and writes ``confusion_matrix.png`` and ``misclassified.png``
into the checkpoint's run folder; the model and data settings are the checkpoint's own."""

import gc

if __name__ == "__main__":  # run as a command: no garbage collection during the imports (src/train.py says why)
    gc.disable()

from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from src import checkpoints, cli, config
from src.callbacks.pictures import TestFigures
from src.config import refused
from src.data.mnist import MNISTDataModule
from src.models.classifier import Classifier


def evaluate(
    ckpt_path: str | None, accelerator: str = "auto", data_dir: str | None = None, log_dir: str = "lightning_logs"
) -> dict[str, Any]:
    checkpoint = checkpoints.needed(ckpt_path, Path(log_dir))
    state = checkpoints.read(checkpoint)
    figures = TestFigures()  # draws into the run folder (default_root_dir)
    run_dir = checkpoints.run_folder(checkpoint)
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False}
    with refused(f"accelerator={accelerator}"):  # Lightning refuses an accelerator this machine lacks
        trainer = L.Trainer(accelerator=accelerator, devices=1, default_root_dir=str(run_dir), callbacks=[figures], **quiet)
    data_settings = dict(state["datamodule_hyper_parameters"]) | ({"data_dir": data_dir} if data_dir else {})
    with refused("data"):
        datamodule = MNISTDataModule(**data_settings)
    model = Classifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    (metrics,) = trainer.test(model, datamodule=datamodule, verbose=False)
    matrix = figures.confusion.compute().cpu()
    per_class = (matrix.diagonal() / matrix.sum(dim=1).clamp(min=1)).tolist()
    png = run_dir / "confusion_matrix.png"
    labels = [datamodule.data_set.label(index) for index in range(len(per_class))]
    return {name: float(value) for name, value in metrics.items()} | {
        "per_class_acc": dict(zip(labels, per_class, strict=True)),
        "confusion_png": str(png),
        "test_images": int(matrix.sum()),
        "data_title": datamodule.data_set.title,
    }


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@cli.task
def main(cfg: DictConfig) -> None:
    result = config.call(evaluate, cfg)
    accuracy, loss = result["result/test_acc"], result["result/test_loss"]
    print(f"test accuracy {accuracy:.4f}, loss {loss:.4f} on {result['test_images']:,} {result['data_title']} test images")
    for label, accuracy in result["per_class_acc"].items():
        print(f"  {label}: {accuracy:.4f}")
    print(f"confusion matrix: {result['confusion_png']}")


if __name__ == "__main__":
    cli.run(main)
