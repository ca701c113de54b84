"""The command line as a user types it: each source of a refusal once, through the real entry points (one line, exit
status 2, no traceback, not a byte written), and one run on the real MNIST to real accuracy. (``python -m src.train``
from a fresh interpreter: every DDP rank Lightning starts, test_ddp.py, and the joblib launcher's jobs, test_sweeps.py.)"""

from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, run_many, tiny_data, tree

# (arguments of python -m src.train, the start of the one line it must print after "error: "), one per source
BAD_TRAIN_COMMANDS = [
    (["optimizer=adamm"], "optimizer=adamm: no such choice; choose from adam, adamw, rmsprop, sgd"),  # Hydra: a choice
    (["trainer.max_epoch=3"], "trainer.max_epoch=3: no such key; did you mean trainer.max_epochs?"),  # Hydra: a key
    (["trainer.fast_dev_run=true", "optimzer=adam"], "optimzer=adam: no such key; did you mean optimizer?"),
    # a real argument of the group's target that its file does not list: added with + (never "did you mean max_epochs")
    (
        ["trainer.min_epochs=2"],
        "trainer.min_epochs=2: an argument of lightning.pytorch.Trainer that its config does not list; "
        "add it with +trainer.min_epochs=2",
    ),
    (
        ["callbacks.checkpoint.save_last=true"],
        "callbacks.checkpoint.save_last=true: an argument of src.callbacks.run_checkpoint.RunCheckpoint that its config does "
        "not list; add it with +callbacks.checkpoint.save_last=true",
    ),
    (
        ["~callbacks.progress_bar", "+experiment=fast"],
        "+experiment=fast: experiment is in conf/train.yaml's defaults already; choose it without +: experiment=fast",
    ),  # the override at fault alone, not ~callbacks.progress_bar beside it
    (["logger=null"], "logger=null: a config group is not set to null; turn it off with logger=none or ~logger"),
    (
        ["experiment=null"],
        "experiment=null: a config group is not set to null; choose one of best, fashion, fast, record, tutorial, or leave it "
        "out with ~experiment",
    ),
    (
        ["name=日本"],
        "name=日本: Hydra cannot parse this (LexerNoViableAltException: name=日本); non-ASCII text needs quotes: 'name=\"日本\"'",
    ),
    (["ckpt_path=runs/3_seed=2/last.ckpt"], "ckpt_path=runs/3_seed=2/last.ckpt: Hydra cannot parse this"),  # Hydra: parse
    (
        ["callbacks.last_checkpoint.filename=last-{step}"],
        "callbacks.last_checkpoint.filename=last-{step}: Hydra cannot parse this (mismatched input '{' expecting <EOF>); "
        "a value holding = , [ ] { } ( ) or spaces needs quotes",
    ),
    (
        ["optimizer=sgd,adam"],
        "optimizer=sgd,adam: Ambiguous value for argument 'optimizer=sgd,adam'",
    ),  # Hydra: a sweep without -m
    (["--resolve"], "The --resolve flag can only be used in conjunction with --cfg or --help"),  # Hydra: its flags
    (["data.batch_size=abc"], "data.batch_size=abc: Input should be a valid integer"),  # pydantic: a type
    (["data.shift=14"], "data.shift=14: Input should be less than or equal to 13"),  # a range in a class's signature
    (["optimizer.weight_decay=-1"], "optimizer (optimizer.weight_decay=-1): Invalid weight_decay value"),  # torch's
    (["trainer.limit_train_batches=1.5"], "trainer (trainer.limit_train_batches=1.5): You have passed invalid value"),
    (["trainer.val_check_interval=1000"], "trainer.val_check_interval=1000: longer than an epoch of 4 training batches"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1: a run needs a length"),  # a rule across keys
    (["hparams_search=optuna"], "hparams_search=optuna: a search runs many trials and needs multirun"),
    (["logger=[csv,tensorboard]"], "logger=[csv,tensorboard]: one logger config at a time"),
    (["log_dir=a-file/logs"], "log_dir=a-file/logs: cannot write to a-file/logs"),  # this machine
    (["logger=mlflow", "logger.tracking_uri=http://127.0.0.1:9"], "logger.tracking_uri=http://127.0.0.1:9: no MLflow server"),
    (["ckpt_path=notes.txt"], "ckpt_path=notes.txt: not a Lightning checkpoint"),  # a checkpoint
    (["ckpt_path=damaged.ckpt"], "ckpt_path=damaged.ckpt: the file is damaged"),
    (["data.sources=[]", "data.data_dir=nodata"], "data.data_dir=nodata: MNIST could not be found or fetched"),  # the data
    (["-m", "data.batch_size=32,abc"], "data.batch_size=abc: Input should be a valid integer"),  # a sweep, before job 1
    (["-m", "optimizer=sgd,adamm"], "optimizer=adamm: no such choice"),
    (["-m", "optimizer=glob(adam*)", "optimizer.lr=0.1,abc"], "optimizer.lr=abc: Input should be a valid number"),
    (["-m", "optimizer.lr=interval(1e-4,1e-2)"], "optimizer.lr=interval(1e-4,1e-2): a range is sampled by a search"),
]
if not torch.cuda.is_available():
    BAD_TRAIN_COMMANDS.append((["trainer.accelerator=gpu"], "trainer (trainer.accelerator=gpu): No supported gpu backend found"))


@pytest.mark.slow
def test_every_source_of_a_refusal_gets_one_line_exit_2_and_writes_nothing(tiny_mnist, tmp_path: Path) -> None:
    """Each command in a process of its own (forked after the imports, see run_many), from a working folder of its own
    (data/ and lightning_logs/ relative to it), on the tiny data set (a refusal during Lightning's set-up needs data)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "damaged.ckpt").write_bytes(b"PK\x03\x04 half a zip")
    (work / "notes.txt").write_text("not a checkpoint")
    (work / "a-file").write_text("a file where a folder should be")
    data = [override for override in tiny_data(tiny_mnist) if not override.startswith("data.batch_size")]
    commands = [[*arguments, *(data if "data.sources=[]" not in arguments else [])] for arguments, _ in BAD_TRAIN_COMMANDS]
    before = tree(work)
    results = run_many([("src.train", work, arguments) for arguments in commands])
    failures = []
    for (arguments, start), done in zip(BAD_TRAIN_COMMANDS, results, strict=True):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        if not (
            done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {start}") and "Traceback" not in done.stdout
        ):
            failures.append(f"{' '.join(arguments)} -> exit {done.returncode}: {done.stderr.strip()[-600:]}")
    assert not failures, "\n".join(failures)
    assert tree(work) == before  # not a byte written: no run folder, no event file, no mlflow.db, no sweep folder


@pytest.mark.slow
def test_the_other_entry_points_keep_the_same_contract(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    cases = [
        ("src.eval", ["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt: no such file"),
        ("src.eval", ["ckpt_path=a=b"], "ckpt_path=a=b: Hydra cannot parse this"),
        ("src.predict", ["ckpt_path=notes.txt", "image=notes.txt"], "ckpt_path=notes.txt: not a Lightning checkpoint"),
        ("src.predict", ["ckpt_path=notes.txt", "imgae=x.png"], "imgae=x.png: no such key; did you mean image?"),
        ("src.export", ["ckpt_path=notes.txt", "format=tflite"], "format=tflite: Input should be 'onnx' or 'torchscript'"),
        ("src.plot", ["nowhere"], "nowhere: no such folder"),
    ]
    before = tree(tmp_path)
    results = run_many([(module, tmp_path, arguments) for module, arguments, _ in cases])
    for (module, _, start), done in zip(cases, results, strict=True):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and lines == [lines[0]] and lines[0].startswith(f"error: {start}"), (module, done.stderr)
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_one_epoch_on_real_mnist_through_the_command_line(real_mnist: Path, tmp_path: Path) -> None:
    arguments = [f"log_dir={tmp_path}", "name=cli", "trainer.max_epochs=1", "data.batch_size=64", "optimizer.lr=0.002"]
    (done,) = run_many([("src.train", REPO, [*arguments, "trainer.accumulate_grad_batches=2", "loss=label_smoothing", "seed=3"])])
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "cli" / "version_0"
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("test accuracy ")]
    assert float(line.split()[2]) > 0.97 and "on 10,000 MNIST test images" in line  # the official test set, whole
    assert f"run folder       {run}" in done.stdout and f"tensorboard --logdir {run}" in done.stdout
    output = done.stdout + done.stderr
    # Output is a pipe, not a terminal: plain progress lines, no tqdm carriage returns.
    assert "epoch 1/1 batch 100/860" in done.stdout and "epoch 1 batch 860/860 step 430 validation: acc/val=" in done.stdout
    assert "\r" not in output and "Error" not in output and "Warning" not in output
    assert "In sizes" in output and "[1, 784]" in output  # the model summary with layer shapes
    assert (run / "config.yaml").read_text().count("label_smoothing: 0.1") == 1
    assert list(run.glob("events.out.tfevents.*")) and (run / "curves.png").is_file()
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 860 // 2  # 55,000 images in batches of 64, accumulated by 2
    assert state["config"]["loss"]["label_smoothing"] == 0.1  # the run's config, for a resume to be held to
