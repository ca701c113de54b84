"""Shared fixtures and helpers: a tiny learnable MNIST-format data set, the real MNIST, composed configs, the CLI."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.forked_cli import wait_for_line

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
REAL_DATA_DIR = REPO / "data"  # the same folder `python -m src.train` uses, so the real files are fetched once
# Trainer switches that keep a test's output short: no progress bar, no model summary.
QUIET = [
    "~callbacks.progress_bar",
    "trainer.enable_progress_bar=false",
    "~callbacks.model_summary",
    "trainer.enable_model_summary=false",
]

# Pictures are tested in test_visual.py; they cost a second a run, so the other tests leave them out.
NO_PICTURES = ["++callbacks.test_figures=null", "++callbacks.curves_png=null"]  # null: left out, also where a recipe has none
# A tiny run through the real command line (with tiny_data): 4 training steps, no pictures unless a test looks at them.
TINY_RUN = [
    *NO_PICTURES,
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=2",
]


def write_idx(folder: Path, prefix: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Write ``images`` (uint8, N x 28 x 28) and ``labels`` in MNIST's IDX format, as torchvision reads it."""
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
    """A data folder laid out like torchvision's MNIST, with its own checksums; the same files stand in for
    Fashion-MNIST (``data=fashion_mnist``) in its own folder."""

    def __init__(self, root: Path, n_train: int = 600, n_test: int = 200) -> None:
        self.root, self.raw = root, root / "MNIST" / "raw"
        write_idx(self.raw, "train", *synthetic_digits(n_train, seed=1))
        write_idx(self.raw, "t10k", *synthetic_digits(n_test, seed=2))
        self.checksums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(self.raw.iterdir())}
        shutil.copytree(self.raw, root / "FashionMNIST" / "raw")

    def use_in(self, cfg: DictConfig, val_size: int = 100) -> DictConfig:
        """Point the config's DataModule at this folder and its checksums, with no fetching."""
        with open_dict(cfg):
            cfg.data.update(data_dir=str(self.root), val_size=val_size, sources=[], checksums=self.checksums)
        return cfg


def tiny_data(tiny: TinyMNIST) -> list[str]:
    """Command-line overrides that point the DataModule at the tests' tiny MNIST-format data set."""
    checksums = ",".join(f"{name}:{digest}" for name, digest in tiny.checksums.items())
    return [
        f"data.data_dir={tiny.root}",
        "data.sources=[]",
        f"data.checksums={{{checksums}}}",
        "data.val_size=100",
        "data.batch_size=32",
    ]


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> TinyMNIST:
    """The tiny data set, written once for the whole session: tests read it and never change it."""
    return TinyMNIST(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The real MNIST in ./data, fetched through the DataModule's own sources if missing."""
    from src.data.mnist import MNISTDataModule

    MNISTDataModule(data_dir=str(REAL_DATA_DIR)).prepare_data()
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def real_run(real_mnist, tmp_path_factory) -> dict:
    """One epoch of the default recipe on real MNIST, trained once for the tests that need a network that reads real
    digits (src.predict, src.serve); its summary."""
    from src.train import train

    with initialize_config_dir(str(CONF), version_base="1.3"):
        overrides = [f"log_dir={tmp_path_factory.mktemp('real')}", *QUIET, *NO_PICTURES, "trainer.max_epochs=1"]
        return train(compose("train", overrides=overrides))


@pytest.fixture
def compose_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """compose_config(*overrides) -> the training config, logging into a temporary folder."""

    def _compose(*overrides: str) -> DictConfig:
        return compose("train", overrides=[f"log_dir={tmp_path / 'logs'}", *overrides])

    with initialize_config_dir(str(CONF), version_base="1.3"):
        yield _compose


# A quiet, deterministic training config of a small network, for the tiny data set, without the pictures (they cost
# more than a tiny run's training: the tests that look at them ask for them, pictures=True).
TINY_CONFIG = [
    *QUIET,
    "trainer.deterministic=true",
    "model.hidden=[64,64]",
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "trainer.log_every_n_steps=5",
]


@pytest.fixture
def tiny_config(compose_config, tiny_mnist) -> Callable[..., DictConfig]:
    """tiny_config(*overrides) -> TINY_CONFIG with the overrides, on the tiny data set."""

    def _tiny(*overrides: str, val_size: int = 100, pictures: bool = False) -> DictConfig:
        cfg = compose_config(*TINY_CONFIG, *([] if pictures else NO_PICTURES), *overrides)
        return tiny_mnist.use_in(cfg, val_size=val_size)

    return _tiny


def trained_once(tiny: TinyMNIST, log_dir: Path, *overrides: str, pictures: bool = False) -> dict:
    """A tiny run trained for a module's tests to share (module-scoped fixtures call it); its summary."""
    from src.train import train

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"log_dir={log_dir}", *TINY_CONFIG, *([] if pictures else NO_PICTURES), *overrides])
    return train(tiny.use_in(cfg))


def scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar a run logged to TensorBoard, as ``{tag: [(step, value), ...]}``."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def last_state(run_dir: str | Path) -> dict:
    return torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", weights_only=True)


def cli_env() -> dict[str, str]:
    """The environment for a command as a user runs it: no full Hydra tracebacks, no inherited DDP variables."""
    return {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LOCAL_RANK", "WORLD_SIZE")}


def run_module(module: str, *arguments: str, timeout: int = 600, signal: tuple | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> <arguments>`` from the repository root, as a user types it, in a new process; output
    captured; ``signal`` sent as :func:`run_many` sends it."""
    command = [sys.executable, "-m", module, *arguments]
    if signal is None:
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=cli_env())
    with tempfile.TemporaryDirectory() as folder:
        out_path, err_path = Path(folder) / "out", Path(folder) / "err"
        with out_path.open("w") as out, err_path.open("w") as err:
            process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, env=cli_env())
            wait_for_line(process.pid, str(out_path), *signal)
            process.wait(timeout=timeout)
        return subprocess.CompletedProcess(command, process.returncode, out_path.read_text(), err_path.read_text())


class ForkedCLI:
    """``tests/forked_cli.py`` in a process of its own, started once for the test session: it runs command lines, each
    forked after the imports that every entry point shares."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def run(self, commands: list[tuple]) -> list[tuple[int, str, str]]:
        if self.process is None or self.process.poll() is not None:
            env = cli_env() | {"PYTHONPATH": str(REPO)}
            command = [sys.executable, "-m", "tests.forked_cli"]
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.process.stdin.write(json.dumps([[module, str(cwd), *rest] for module, cwd, *rest in commands]) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "tests/forked_cli.py ended without answering"
        return json.loads(answer)

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


FORKED_CLI = ForkedCLI()


@pytest.fixture(scope="session", autouse=True)
def _forked_cli_stops() -> Iterator[None]:
    yield
    FORKED_CLI.close()


def run_many(commands: list[tuple]) -> list[subprocess.CompletedProcess]:
    """Each ``(module, working folder, arguments[, (signum, line start)])`` as ``python -m <module> <arguments>`` there,
    in a process of its own, with Python's start-up and the imports paid once a session (``tests/forked_cli.py``); the
    signal is sent when a line of its output starts so."""
    results = FORKED_CLI.run(commands)
    return [
        subprocess.CompletedProcess([module, *arguments], code, out, err)
        for (module, _, arguments, *_), (code, out, err) in zip(commands, results, strict=True)
    ]


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` with its sha256 (folders: "dir"): equal trees mean nothing was written."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
    }


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single line a refused command prints; fails unless it exited 2 with exactly one line and no traceback."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]
