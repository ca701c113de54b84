"""Bad input as a new user types it, through the real command line: one line naming the key, exit status 2, no
traceback, and not a byte written; refused resumes and full disks leave earlier runs whole."""

import hashlib
import subprocess
from pathlib import Path

import pytest
import torch

from src.checkpoint_io import CheckpointWriteError
from src.cli import ConfigError
from src.predict import predict
from src.train import train
from tests.conftest import run_many

# (arguments of python -m src.train, the start of the one line it must print after "error: ")
BAD_TRAIN_COMMANDS = [
    # types
    (["data.batch_size=abc"], "data.batch_size=abc: wrong type; use a whole number"),
    (["data.batch_size="], "data.batch_size=: wrong type; use a whole number"),
    (["data.batch_size=1.5"], "data.batch_size=1.5: wrong type; use a whole number"),
    (["optimizer.lr=abc"], "optimizer.lr=abc: wrong type; use a number"),
    (["seed=abc"], "seed=abc: wrong type; use a whole number"),
    (["trainer.max_epochs=two"], "trainer.max_epochs=two: wrong type; use a whole number"),
    (["trainer.deterministic=maybe"], "trainer.deterministic=maybe: no such choice; use one of warn or true or false"),
    (["model.hidden=[a,b]"], "model.hidden=[a,b]: wrong type; use a list of whole numbers"),
    # ranges
    (["model.hidden=[0]"], "model.hidden=[0]: every width must be a whole number >= 1"),
    (["model.hidden=[-3]"], "model.hidden=[-3]: every width must be a whole number >= 1"),
    (["model.dropout=-0.1"], "model.dropout=-0.1: out of range"),
    (["model.dropout=1.5"], "model.dropout=1.5: out of range"),
    (["optimizer.lr=-1"], "optimizer.lr=-1: out of range"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1: Invalid weight_decay value"),
    (["optimizer.betas=[0.9,2.0]"], "optimizer.betas=[0.9,2.0]: Invalid beta parameter"),
    (["loss=label_smoothing", "loss.label_smoothing=1.5"], "loss.label_smoothing=1.5: label_smoothing must be between"),
    (["scheduler.pct_start=1.5"], "scheduler.pct_start=1.5: out of range"),
    (["data.shift=14"], "data.shift=14: out of range"),
    (["data.dataset=cifar10"], "data.dataset=cifar10: no such choice; use one of mnist, fashion_mnist"),
    (["data=fashion_mnist", "data.sources=[npm]"], "data.sources=npm: no such choice; use one of torchvision, debian"),
    (["data.elastic_alpha=-5"], "data.elastic_alpha=-5: out of range"),
    (["data.elastic_sigma=0"], "data.elastic_sigma=0: out of range"),
    (["data.val_size=60000"], "data.val_size=60000: out of range"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0: out of range"),
    (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5: use a fraction"),
    (["trainer.max_steps=0"], "trainer.max_steps=0: use -1"),
    (["callbacks.progress_bar.every_n_steps=0"], "callbacks.progress_bar.every_n_steps=0: out of range"),
    (["trainer.devices=4096"], "trainer.devices=4096: "),
    # choices
    (["optimizer=adamm"], "optimizer=adamm: no such choice; choose from adam, adamw, rmsprop, sgd"),
    (["data.loader=foo"], "data.loader=foo: no such choice; use one of device, dataloader"),
    (["data.normalization=foo"], "data.normalization=foo: no such choice; use one of standard, symmetric"),
    (["trainer.precision=8-bit"], "trainer.precision=8-bit: no such choice; use one of"),
    (["+experiment=slow"], "+experiment=slow: no such choice"),
    # unknown keys
    (["foo=1"], "foo=1: no such key"),
    (["+foo=1"], "foo=1: no such setting"),
    (["trainer.max_epoch=3"], "trainer.max_epoch=3: no such key; did you mean trainer.max_epochs?"),
    (["+trainer.no_such_arg=1"], "trainer.no_such_arg=1: lightning.pytorch.Trainer has no such argument"),
    (["+optimizer.momentun=0.9"], "optimizer.momentun=0.9: torch.optim.AdamW has no such argument"),
    # across keys, and the command line itself
    (
        ["trainer.max_epochs=-1"],
        "trainer.max_epochs=-1: a run needs a length; use a whole number >= 1, or -1 with trainer.max_steps > 0",
    ),
    (["~trainer.max_epochs"], "trainer.max_epochs=null: a run needs a length; use a whole number >= 1"),
    (["optimizer=sgd,adam"], "optimizer=sgd,adam: a comma-separated value sweeps, which needs -m"),
    (["hparams_search=optuna"], "hparams_search=optuna: a search runs many trials and needs multirun"),
    (["ckpt_path=runs/3_seed=2/last.ckpt"], "ckpt_path=runs/3_seed=2/last.ckpt: Hydra cannot parse this"),
    # files and folders
    (["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt: no such file"),
    (["ckpt_path=last"], "ckpt_path=last: no run under"),
    (["ckpt_path=damaged.ckpt"], "ckpt_path=damaged.ckpt: the file is damaged"),
    (["ckpt_path=notes.txt"], "ckpt_path=notes.txt: not a Lightning checkpoint"),
    (["data.data_dir=a-file/data"], "data.data_dir=a-file/data: cannot write to"),
    (["log_dir=a-file/logs"], "log_dir=a-file/logs: cannot write to"),
    (["data.sources=[]"], "data.data_dir=data: MNIST could not be found or fetched"),
    (["init_from=nowhere.ckpt"], "init_from=nowhere.ckpt: no such file"),
    (["ckpt_path=damaged.ckpt", "init_from=notes.txt"], "init_from=notes.txt: give ckpt_path"),
    # groups and keys of other tools' habits
    (["trainer.logger=false"], "trainer.logger=false: set by the project; choose logger=tensorboard | csv"),
    (["logger.save_dir=elsewhere"], "logger.save_dir=elsewhere: set by the project; runs go to <log_dir>/<name>/version_<N>/"),
    (["model=null"], "model=null: a run cannot do without model; choose from mlp"),
    (["logger=wandb"], "logger=wandb: no such choice; choose from csv, many, mlflow, none, tensorboard"),
    (["debug=fast"], "debug=fast: no such choice; choose from anomaly, default, fdr, limit, overfit, profiler"),
    (["extras.print_config=true"], "extras.print_config=true: no such key; did you mean print_config?"),
    (["print_config=maybe"], "print_config=maybe: wrong type; use true or false"),
]
if not torch.cuda.is_available():
    BAD_TRAIN_COMMANDS.append((["trainer.accelerator=gpu"], "trainer.accelerator=gpu: no CUDA GPU is visible"))
BAD_TRAIN_COMMANDS += [
    (["logger=mlflow", "trainer.accelerator=tpu"], "trainer.accelerator=tpu: not available on this machine"),  # no mlflow.db
    (["trainer.accelerator=foo"], "trainer.accelerator=foo: no such accelerator; use auto, cpu or gpu"),
    (["data.num_workers=4"], "data.num_workers=4: workers feed loader=dataloader only"),  # not silently unused
]


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` with its sha256 (folders: "dir")."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.slow
def test_every_bad_command_gets_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    """Each command in a process of its own (forked after the imports, see run_many), from a working folder of its own
    (data/ and lightning_logs/ relative to it)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "damaged.ckpt").write_bytes(b"PK\x03\x04 half a zip")
    (work / "notes.txt").write_text("not a checkpoint")
    (work / "a-file").write_text("a file where a folder should be")
    before = tree(work)
    results = run_many([("src.train", work, arguments) for arguments, _ in BAD_TRAIN_COMMANDS])
    expected = BAD_TRAIN_COMMANDS
    failures = []
    for (arguments, start), done in zip(expected, results, strict=True):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        ok = (
            done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {start}") and "Traceback" not in done.stdout
        )
        if not ok:
            failures.append(f"{' '.join(arguments)} -> exit {done.returncode}: {done.stderr.strip()[-500:]}")
    assert not failures, "\n".join(failures)
    assert tree(work) == before  # not a byte written: no run folder, no event file, no data folder


@pytest.mark.slow
def test_the_other_entry_points_keep_the_same_contract(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    cases = [
        ("src.eval", ["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt: no such file"),
        ("src.predict", ["ckpt_path=notes.txt", "image=notes.txt"], "ckpt_path=notes.txt: not a Lightning checkpoint"),
        ("src.export", ["ckpt_path=notes.txt", "format=tflite"], "format=tflite: unknown; use one of onnx, torchscript"),
        ("src.eval", ["ckpt_path=a=b"], "ckpt_path=a=b: Hydra cannot parse this"),
        ("src.plot", ["nowhere"], "nowhere: no such folder"),
    ]
    before = tree(tmp_path)
    results = run_many([(module, tmp_path, arguments) for module, arguments, _ in cases])
    for (module, _, start), done in zip(cases, results, strict=True):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and lines == [lines[0]] and lines[0].startswith(f"error: {start}"), (module, done.stderr)
    assert tree(tmp_path) == before


def test_a_file_that_is_not_an_image_is_named(tiny_config, tmp_path) -> None:
    summary = train(tiny_config("trainer.max_epochs=1"))
    fake = tmp_path / "digit.png"
    fake.write_text("not a picture")
    with pytest.raises(ConfigError, match=r"^image=.*digit.png: not an image PIL can read \(UnidentifiedImageError\)"):
        predict(summary["best_checkpoint"], str(fake))


def test_a_refused_resume_leaves_the_finished_run_byte_for_byte_unchanged(tiny_config) -> None:
    first = train(tiny_config("scheduler=one_cycle", "trainer.max_epochs=2"))
    run = Path(first["run_dir"])
    (halfway,) = run.glob("checkpoints/epoch00-*.ckpt")  # 16 of the schedule's 32 steps: the run had not finished there
    before = tree(run)
    with pytest.raises(ConfigError, match="trainer.max_epochs=3: the checkpoint's learning-rate schedule spans 32 steps"):
        train(tiny_config("scheduler=one_cycle", "trainer.max_epochs=3", f"ckpt_path={halfway}"))
    assert tree(run) == before  # no config.resumed.yaml, no purge event, no hparams.yaml rewritten


def test_a_new_run_refused_during_lightnings_set_up_leaves_no_run_folder(tiny_config, monkeypatch) -> None:
    from src.models import classifier

    def refuse(self):
        raise classifier.ScheduleLengthError("refused while Lightning sets up the optimizers")

    monkeypatch.setattr(classifier.Classifier, "configure_optimizers", refuse)
    cfg = tiny_config("trainer.max_epochs=1")
    with pytest.raises(ConfigError, match="refused while Lightning sets up"):
        train(cfg)
    assert not Path(cfg.log_dir).exists()  # Lightning had created the event file: removed again


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MiB tmpfs: a checkpoint of the default network (~11 MiB) cannot be written there."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the faked disk error in test_faults.py still runs")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk_ends_in_one_error_and_leaves_no_partial_file(compose_config, tiny_mnist, small_disk) -> None:
    cfg = tiny_mnist.use_in(compose_config(f"log_dir={small_disk}", "trainer.max_epochs=1", "trainer.log_every_n_steps=2"))
    with pytest.raises(
        CheckpointWriteError, match=r"No space left on device; .* MiB free and a checkpoint needs about 10\.\d MiB"
    ):
        train(cfg)
    assert not [path for path in small_disk.rglob("*") if "partial" in path.name]
