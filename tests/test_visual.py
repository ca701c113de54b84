"""What people look at: TensorBoard (through its real server), the PNG per run and per sweep."""

import io
import json
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest
from PIL import Image

from src.figures import draw_run, draw_sweep, drawable, name_fonts
from src.plot import main as plot_main
from tests.conftest import trained_once
from tests.serving import free_port

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def get_json(url: str, body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def two_runs(tiny_mnist, tmp_path_factory) -> list[dict]:
    """Two runs that differ in their seed and learning rate, side by side as a sweep's runs are."""
    logs, overrides = tmp_path_factory.mktemp("two"), ["name=pair", "trainer.max_epochs=3", "trainer.log_every_n_steps=4"]
    return [
        trained_once(tiny_mnist, logs, *overrides, f"seed={s}", f"optimizer.lr={lr}", pictures=True)
        for s, lr in ((1, 0.001), (2, 0.002))
    ]


@pytest.mark.slow
def test_tensorboard_server_shows_the_runs(two_runs) -> None:
    summary, folder = two_runs[0], Path(two_runs[0]["run_dir"]).parent
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(folder), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                tags = get_json(f"{base}/scalars/tags")["version_0"]
                if "result/test_acc" in tags:
                    break
            except (OSError, KeyError):
                pass
            assert time.monotonic() < deadline, "tensorboard did not serve the run within 90 s"
            assert server.poll() is None, "tensorboard exited"
            time.sleep(1)
        assert {"loss/train", "acc/train", "loss/val", "acc/val", "result/test_acc", "result/test_loss", "lr"} <= set(tags)
        assert "epoch" not in tags and not any(tag.startswith("hp") for tag in tags)  # no staircase, no empty charts

        def steps(tag: str) -> list[int]:
            return [step for _, step, _ in get_json(f"{base}/scalars/scalars?run=version_0&tag={tag}")]

        # 500 training samples in batches of 32: 16 steps an epoch, 48 in all; logged every 4 steps, train/* as the
        # mean over those 4 steps.
        assert steps("loss/train") == list(range(3, 48, 4))
        assert steps("acc/val") == [15, 31, 47]  # once per epoch
        assert set(steps("result/test_acc")) == {48}
        assert len(steps("lr")) == 12
        layout = get_json(f"{base}/custom_scalars/layout")
        charts = {chart["title"]: chart["multiline"]["tag"] for chart in layout["category"][0]["chart"]}
        assert charts["accuracy (train: mean over each logging window)"] == ["^acc/train$", "^acc/val$", "^result/test_acc$"]
        images = get_json(f"{base}/images/tags")["version_0"]
        assert {"test/confusion_matrix", "test/misclassified"} <= set(images)
        (shown,) = get_json(f"{base}/images/images?run=version_0&tag=test/confusion_matrix")
        with urllib.request.urlopen(f"{base}/images/individualImage?{shown['query']}", timeout=10) as answer:
            picture = Image.open(io.BytesIO(answer.read()))
        assert picture.size == (640, 560)  # drawn at 6.4 x 5.6 in, 100 dpi: TensorBoard shows it as drawn
        assert (Path(summary["run_dir"]) / "confusion_matrix.png").read_bytes().startswith(PNG_SIGNATURE)
        # HPARAMS: TensorBoard lays the table out from the runs' sessions: what differs between them first, ticked
        experiment = get_json(f"{base}/hparams/experiment", {"experimentName": ""})
        infos = experiment["hparamInfos"]
        assert [info["name"] for info in infos if info.get("differs")] == ["lr", "seed"] == [info["name"] for info in infos[:2]]
        hparams = {info["name"]: info["type"] for info in infos}
        assert hparams["lr"] == "DATA_TYPE_FLOAT64" and hparams["optimizer"] == "DATA_TYPE_STRING"
        assert {"lr", "optimizer", "scheduler", "loss", "hidden", "batch_size", "max_epochs", "seed"} <= set(hparams)
        assert not any("/" in name or "_target_" in name for name in hparams)  # a curated flat set, not the config tree
        assert {"result/test_acc", "result/best_val_acc", "acc/val"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
        query = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"], "colParams": [], "sliceSize": 10}
        assert get_json(f"{base}/hparams/session_groups", query | {"startIndex": 0})["totalSize"] == 2  # one session a run
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_each_run_gets_a_png_and_a_sweep_folder_gets_an_overlay(two_runs, capsys) -> None:
    for run in two_runs:
        assert (Path(run["run_dir"]) / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    sweep = Path(two_runs[0]["run_dir"]).parent
    plot_main([str(sweep)])
    assert (sweep / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert str(sweep / "curves.png") in capsys.readouterr().out
    (sweep / "empty").mkdir()
    with pytest.raises(SystemExit) as stop:
        plot_main([str(sweep / "empty")])
    assert stop.value.code == 2 and "no TensorBoard or CSV logs" in capsys.readouterr().err


def test_a_search_of_long_named_trials_keeps_its_panels_wide_and_its_legend_below(tmp_path, monkeypatch) -> None:
    """An Optuna sweep's folders name every sampled value; its runs may have validated at one step alone."""
    from matplotlib.figure import Figure

    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *args, **kwargs: saved.append(figure))
    curves = {"acc/val": [(2, 0.5)], "loss/val": [(2, 1.0)]}
    long = "data.batch_size:256,model.dropout:0.{0}5,optimizer.lr:0.00{0}1234,optimizer.weight_decay:0.{0}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "tight layout not applied"
        draw_sweep({f"{i}_{long.format(i)}": curves for i in range(12)}, tmp_path / "curves.png", "mnist-sweep")
    (figure,) = saved
    figure.draw_without_rendering()  # the layout, as saving applies it
    assert all(axis.get_position().width > 0.35 for axis in figure.axes)  # not squeezed by the names
    assert all(tick == int(tick) for axis in figure.axes for tick in axis.get_xticks())  # whole steps


def test_runs_named_in_chinese_are_drawn_with_their_names_and_no_missing_glyph(tmp_path) -> None:
    """With a CJK font (.ci/run installs fonts-noto-cjk) the name is drawn as it is; without, each character as its code
    point: never an empty box, never matplotlib's missing-glyph warning."""
    curves = {"acc/val": [(10, 0.5), (20, 0.6)], "loss/val": [(10, 1.0), (20, 0.8)]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of each glyph a font lacks
        draw_run(curves, tmp_path / "run.png", "日本/version_0")
        draw_sweep({"0_name:日本": curves, "1_name:中文": curves}, tmp_path / "sweep.png", "日本-sweep")
    assert Image.open(tmp_path / "run.png").size == (1100, 400) and (tmp_path / "sweep.png").is_file()
    cjk = len(name_fonts()) > 1
    assert cjk or not Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").exists()  # a font there is used
    assert drawable("日本/version_0") == ("日本/version_0" if cjk else "U+65E5U+672C/version_0")
