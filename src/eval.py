"""``python -m src.eval ckpt_path=<file>``: a checkpoint on its data set's official test images, with its own model and
data settings: test accuracy and loss, each class's accuracy, and the test pictures in ``<its run folder>/eval/<its
name>/`` (the run's own, of the checkpoint it tested, stay as they are)."""

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
    figures = TestFigures()  # draws into default_root_dir: a folder of this checkpoint's, beside the run's own pictures
    out = checkpoints.run_folder(checkpoint) / "eval" / checkpoint.stem
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False, "enable_checkpointing": False}
    with refused(f"accelerator={accelerator}"):  # Lightning refuses an accelerator this machine lacks
        trainer = L.Trainer(accelerator=accelerator, devices=1, default_root_dir=str(out), callbacks=[figures], **quiet)
    with refused("data"):
        datamodule = MNISTDataModule(**state["datamodule_hyper_parameters"] | ({"data_dir": data_dir} if data_dir else {}))
    model = Classifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    out.mkdir(parents=True, exist_ok=True)
    (metrics,) = trainer.test(model, datamodule=datamodule, verbose=False)
    matrix = figures.confusion.compute().cpu()
    per_class = (matrix.diagonal() / matrix.sum(dim=1).clamp(min=1)).tolist()
    return {name: float(value) for name, value in metrics.items()} | {
        "per_class_acc": {datamodule.data_set.label(index): accuracy for index, accuracy in enumerate(per_class)},
        "confusion_png": str(out / "confusion_matrix.png"),
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
