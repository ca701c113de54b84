"""Using a trained model: evaluation and prediction on images, as a user runs them."""

from pathlib import Path

import pytest
from PIL import Image

from src.eval import evaluate
from src.predict import predict, to_mnist
from src.train import train
from tests.conftest import run_module, synthetic_digits


@pytest.fixture
def trained(tiny_config) -> dict:
    return train(tiny_config("trainer.max_epochs=3"))


def test_eval_reports_accuracy_per_class_and_a_confusion_png(trained, tiny_mnist) -> None:
    result = evaluate(trained["best_checkpoint"], data_dir=str(tiny_mnist.root))
    assert result["result/test_acc"] == pytest.approx(trained["test_acc"])  # the same checkpoint, the same 200 test images
    assert result["test_images"] == 200 and list(result["per_class_acc"]) == [f"digit {d}" for d in range(10)]
    assert Path(result["confusion_png"]).read_bytes().startswith(b"\x89PNG")


def test_predict_reads_digits_of_any_size_colour_and_polarity(trained, tmp_path) -> None:
    images, labels = synthetic_digits(6, seed=9)
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, (pixels, label) in enumerate(zip(images, labels.tolist(), strict=True)):
        picture = Image.fromarray(pixels.numpy())
        if i % 3 == 1:
            picture = Image.fromarray(255 - pixels.numpy())  # dark digit on light paper
        if i % 3 == 2:
            picture = picture.convert("RGB").resize((112, 112), Image.Resampling.NEAREST)  # bigger, in colour
        picture.save(folder / f"{i}_label{label}.png")
    assert to_mnist(folder / f"1_label{labels[1].item()}.png").float().mean() < 127  # inverted back
    results = predict(trained["best_checkpoint"], str(folder))
    assert [digit for _, digit, _ in results] == [str(label) for label in labels.tolist()]
    assert all(abs(sum(p) - 1) < 1e-4 and len(p) == 10 for _, _, p in results)
    done = run_module(
        "src.predict", f"ckpt_path={trained['best_checkpoint']}", f"image={folder / f'0_label{labels[0].item()}.png'}"
    )
    assert done.returncode == 0 and f": {labels[0].item()}   0:" in done.stdout


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_export_round_trip_matches_the_checkpoint(trained, tiny_mnist, format: str) -> None:
    from src.export import export

    path, difference = export(trained["best_checkpoint"], format, check_images=100)
    assert path.is_file() and path.suffix == {"onnx": ".onnx", "torchscript": ".pt"}[format]
    assert difference < 1e-4


def test_export_rejects_an_unknown_format(trained) -> None:
    from src.cli import ConfigError
    from src.export import export

    with pytest.raises(ConfigError, match="^format=tflite: unknown; use one of onnx, torchscript"):
        export(trained["best_checkpoint"], "tflite")
