"""Using a trained model: evaluation and prediction on images, as a user runs them."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from src.data.datasets import MNIST
from src.data.images import to_mnist
from src.eval import evaluate
from src.predict import predict
from tests.conftest import REAL_DATA_DIR, REPO, cli_env, one_error_line, run_many, tree


def test_eval_reports_accuracy_per_class_and_a_confusion_png(tiny_run, tiny_mnist) -> None:
    result = evaluate(tiny_run["best_checkpoint"], data_dir=str(tiny_mnist.root))
    assert result["result/test_acc"] == pytest.approx(tiny_run["test_acc"])  # the same checkpoint, the same 200 test images
    assert result["test_images"] == 200 and list(result["per_class_acc"]) == [f"digit {d}" for d in range(10)]
    shown = Path(result["confusion_png"])
    assert shown.read_bytes().startswith(b"\x89PNG")
    checkpoint = Path(tiny_run["best_checkpoint"])  # beside the run's own pictures, not over them
    assert shown == checkpoint.parent.parent / "eval" / checkpoint.stem / "confusion_matrix.png"


@pytest.mark.slow
def test_predict_reads_digits_of_any_size_colour_and_polarity(real_run, tmp_path) -> None:
    """Real test digits as people's pictures are (dark on paper, larger and in colour, small in a corner of a page),
    prepared as MNIST prepared its digits, read as the digits themselves."""
    from torchvision.datasets import MNIST as MNISTFiles

    test = MNISTFiles(str(REAL_DATA_DIR), train=False)
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(8):
        digit = test.data[i].numpy()
        picture = Image.fromarray(digit)
        if i % 4 == 1:
            picture = Image.fromarray(255 - digit)  # dark digit on light paper
        if i % 4 == 2:
            picture = picture.convert("RGB").resize((112, 112), Image.Resampling.BILINEAR)  # bigger, in colour
        if i % 4 == 3:  # drawn small in the corner of a large white page
            page = Image.new("L", (400, 300), 255)
            page.paste(Image.fromarray(255 - digit).resize((40, 40)), (10, 20))
            picture = page
        picture.save(folder / f"{i}.png")
        prepared = to_mnist(Image.open(folder / f"{i}.png"), MNIST).astype(int)
        assert abs(prepared - digit.astype(int)).mean() < 12  # framed back where MNIST had it: light on dark
    plain = predict(real_run["best_checkpoint"], str(folder / "0.png"))
    results = predict(real_run["best_checkpoint"], str(folder))
    assert [digit for _, digit, _ in results] == [str(label) for label in test.targets[:8].tolist()]
    assert all(abs(sum(p) - 1) < 1e-4 and len(p) == 10 for _, _, p in results)
    assert results[0][2] == pytest.approx(plain[0][2], abs=1e-6)
    (done,) = run_many([("src.predict", REPO, [f"ckpt_path={real_run['best_checkpoint']}", f"image={folder / '0.png'}"])])
    assert done.returncode == 0 and f": {test.targets[0].item()}   0:" in done.stdout


def test_bad_commands_after_training_get_one_line_and_write_nothing(tiny_run, tmp_path) -> None:
    """Missing arguments, a GPU that is not there, out-of-range settings, ckpt_path=last with no runs, a damaged file, a
    file of the run folder or no checkpoint at all given as the checkpoint, an image that is none, a busy port."""
    given, run = f"ckpt_path={tiny_run['best_checkpoint']}", Path(tiny_run["run_dir"])
    config, work, damaged, other = run / "config.yaml", tmp_path / "work", tmp_path / "damaged.ckpt", tmp_path / "other.ckpt"
    work.mkdir()  # no lightning_logs/ here
    (work / "notes.txt").write_text("not a checkpoint")
    damaged.write_bytes(Path(tiny_run["best_checkpoint"]).read_bytes()[:5000])
    state = torch.load(tiny_run["best_checkpoint"], weights_only=True)
    torch.save(state | {"state_dict": {"net.layers.0.weight": torch.zeros(3, 3)}}, other)
    os.mkfifo(pipe := tmp_path / "pipe")
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    run_before = tree(run)
    cases = [
        ("src.eval", [], "ckpt_path=???: a checkpoint is needed; give ckpt_path=<path to a .ckpt> or ckpt_path=last"),
        ("src.predict", [], "ckpt_path=???: a checkpoint is needed"),
        ("src.export", [], "ckpt_path=???: a checkpoint is needed"),
        ("src.predict", [given], "image=???: an image is needed"),
        ("src.export", [given, "check_images=0"], "check_images=0: Input should be greater than or equal to 1"),
        ("src.export", [given, "tolerance=-1"], "tolerance=-1: Input should be greater than 0"),
        ("src.export", [given, "+opset=17"], "opset=17: export has no such argument; it takes"),
        ("src.export", ["ckpt_path=notes.txt", "format=tflite"], "format=tflite: Input should be 'onnx' or 'torchscript'"),
        ("src.eval", ["ckpt_path=last"], "ckpt_path=last: no run under lightning_logs has checkpoints/last.ckpt; give"),
        ("src.export", ["ckpt_path=last", f"log_dir={work}"], f"ckpt_path=last: no run under {work} has"),
        ("src.eval", ["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt: no such file"),
        ("src.eval", [f"ckpt_path={run}"], f"ckpt_path={run}: a folder, not a checkpoint; give one of its .ckpt files: "),
        ("src.export", [given, f"out={pipe}"], f"out={pipe}: not a regular file"),  # (/dev/null, as root, was replaced)
        ("src.export", [given, "out=/sys/"], "out=/sys/: cannot write to /sys; give out=<a writable path>"),
        ("src.export", [given, "out=model.pt"], "out=model.pt: a .pt file is torchscript's; add format=torchscript, or name"),
        ("src.predict", [given, "image=missing.png"], "image=missing.png: no such file or folder; give image=<an image"),
        ("src.eval", ["ckpt_path=a=b"], "ckpt_path=a=b: Hydra cannot parse this"),
        ("src.predict", ["ckpt_path=notes.txt", "image=notes.txt"], "ckpt_path=notes.txt: not a Lightning checkpoint"),
        ("src.predict", ["ckpt_path=notes.txt", "imgae=x.png"], "imgae=x.png: no such key; did you mean image?"),
        ("src.predict", [given, "image=notes.txt"], "image=notes.txt: not an image PIL can read (UnidentifiedImageError)"),
        ("src.predict", [given, "image=."], "image=.: the folder holds no image files (its subfolders are not read)"),
        ("src.plot", [str(work / "nowhere")], f"{work / 'nowhere'}: no such folder"),
        ("src.plot", [], "the following arguments are required: folder; give one folder: python -m src.plot <run"),
        ("src.plot", [str(work), str(run)], f"unrecognized arguments: {run}; give one folder"),  # a glob of two sweeps
        ("src.serve", [], "ckpt_path=???: a checkpoint is needed"),
        ("src.serve", ["ckpt_path=missing.ckpt"], "ckpt_path=missing.ckpt: no such file"),
        ("src.serve", [f"ckpt_path={damaged}"], f"ckpt_path={damaged}: the file is damaged"),
        ("src.serve", [f"ckpt_path={other}"], f"ckpt_path={other}: not a network this project trained"),
        ("src.serve", [given, "port=80"], "port=80: Input should be greater than or equal to 1024"),
        ("src.serve", [given, "host=example.com"], "host=example.com: Input should be '127.0.0.1', '0.0.0.0' or '::'"),
        ("src.serve", [given, f"port={port}"], f"port={port}: cannot listen on"),
        ("src.serve", [given, "max_batch_size=0"], "max_batch_size=0: Input should be greater than or equal to 1"),
        ("src.serve", [given, "+workers=4"], "workers=4: serve has no such argument; it takes ckpt_path"),
        # the run's own checkpoints, named from its checkpoints/ folder
        ("src.predict", [f"ckpt_path={config}", f"image={config}"], f"ckpt_path={config}: not a Lightning checkpoint; "
         f"checkpoints of this run: {tiny_run['best_checkpoint']}, {run / 'checkpoints' / 'last.ckpt'}"),
    ]  # fmt: skip
    if not torch.cuda.is_available():
        cases.append(("src.eval", [given, "accelerator=gpu"], "accelerator=gpu: No supported gpu backend found"))
        cases.append(("src.serve", [given, "accelerator=gpu"], "accelerator=gpu: this machine has none"))
    before = tree(tmp_path)
    with busy:
        results = run_many([(module, work, arguments) for module, arguments, _ in cases])
    for (module, arguments, start), done in zip(cases, results, strict=True):
        assert one_error_line(done).startswith(f"error: {start}"), (module, arguments, done.stderr)
    assert tree(tmp_path) == before and tree(run) == run_before


def test_the_commands_after_training_run_from_a_folder_of_their_own(tiny_run, tmp_path) -> None:
    """eval with ckpt_path=last under log_dir; exports into a folder, into a new folder, and of more test images than
    there are, none printing TorchScript's deprecation warning; an export that differs: exit 1, one line, no file."""
    existing = tmp_path / "existing"
    existing.mkdir()
    ckpt, torchscript, onnx = tiny_run["best_checkpoint"], "format=torchscript", tmp_path / "model.onnx"
    last, *results, differs = run_many(
        [
            ("src.eval", tmp_path, ["ckpt_path=last", f"log_dir={Path(tiny_run['run_dir']).parent.parent}"]),
            ("src.export", tmp_path, [f"ckpt_path={ckpt}", torchscript, f"out={existing}", "check_images=50"]),
            ("src.export", tmp_path, [f"ckpt_path={ckpt}", torchscript, f"out={tmp_path / 'new'}/", "check_images=50"]),
            ("src.export", tmp_path, [f"ckpt_path={ckpt}", torchscript, f"out={tmp_path}/", "check_images=20000"]),
            ("src.export", tmp_path, [f"ckpt_path={ckpt}", f"out={onnx}", "tolerance=1e-30"]),
        ]
    )
    assert last.returncode == 0 and "test accuracy" in last.stdout, last.stderr
    assert all(done.returncode == 0 for done in results), [done.stderr for done in results]
    assert "on 50 test images" in results[0].stdout
    assert "on 200 test images" in results[2].stdout  # all of the tiny test set, not the 20,000 asked for
    assert (existing / "model.pt").is_file() and (tmp_path / "new" / "model.pt").is_file()
    assert "Warning" not in results[0].stderr, results[0].stderr
    lines = [line for line in differs.stderr.splitlines() if line.startswith("error: ")]
    assert differs.returncode == 1 and "Traceback" not in differs.stderr and "Error executing job" not in differs.stderr
    assert lines[0].startswith("error: tolerance=1e-30: the exported model's logits differ") and not onnx.exists()
    assert "[torch.onnx]" not in differs.stdout and "PassManager" not in differs.stdout  # its exporter's steps: not ours


def test_a_failed_export_check_leaves_the_earlier_file_and_no_other(tiny_run, tmp_path, monkeypatch) -> None:
    from src import export

    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "model.pt"
    export.export(tiny_run["best_checkpoint"], "torchscript", str(out), check_images=20)
    good = out.read_bytes()

    def wrong(net, images, format: str, path: Path):
        path.write_bytes(b"a model that computes something else")
        return net(images).detach().numpy() + 1

    monkeypatch.setattr(export, "write_and_run", wrong)
    with pytest.raises(export.ExportMismatch, match=r"^tolerance=0.0001: the exported model's logits differ .* by up to 1"):
        export.export(tiny_run["best_checkpoint"], "torchscript", str(out), check_images=20)
    assert out.read_bytes() == good and sorted(folder.iterdir()) == [out]  # no temporary file left
    with pytest.raises(export.ExportMismatch):
        export.export(tiny_run["best_checkpoint"], "torchscript", str(folder / "a" / "b" / "model.pt"), check_images=20)
    assert sorted(folder.iterdir()) == [out]  # the folders it made are gone again


@pytest.mark.parametrize(
    ("module", "missing", "arguments", "extra"),
    [("src.export", "onnxruntime", ["format=onnx"], "export"), ("src.serve", "litserve", [], "serve")],
)
def test_a_missing_extra_is_one_line_naming_it(tiny_run, tmp_path, module, missing, arguments, extra) -> None:
    """Run without the extra (``sys.modules[name] = None`` makes ``import name`` fail): one line naming it, nothing written."""
    run = Path(tiny_run["run_dir"])
    before = tree(run)
    argv = [module, f"ckpt_path={tiny_run['best_checkpoint']}", *arguments]
    script = f"import runpy, sys; sys.modules[{missing!r}] = None; sys.argv = {argv!r}; "
    script += f"runpy.run_module({module!r}, run_name='__main__')"
    env = cli_env() | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    setting = arguments[0] if arguments else module
    assert one_error_line(done) == f"error: {setting}: needs {missing}, which is not installed; pip install -e '.[{extra}]'"
    assert tree(tmp_path) == {} and tree(run) == before
