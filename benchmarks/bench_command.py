"""``python -m benchmarks.bench_command``: what a user waits for, the whole command from start to summary, against a plain
PyTorch script doing the same work.

Commands, each a process of its own, from this project's folder (MNIST in ./data):

  plain      python scripts/plain_fast.py                          experiment=fast's recipe, hand-written
  project    python -m src.train experiment=fast                   the same recipe through this project
  one batch  python -m src.train trainer.fast_dev_run=true         a batch of each stage, nothing written
  predict    python -m src.predict ckpt_path=<project's> image=<a digit PNG>

Method: ``rounds`` rounds; in each, plain and project run back to back in alternating order (so machine noise hits
both alike), then one batch and predict. Wall time of each whole process (start-up, imports, data, training, test,
summary) by ``time.perf_counter`` around ``subprocess.run``; the median per command is reported, with plain/project
(1.0: as fast as the plain script; also per round, the pair run back to back, and their median) and both test
accuracies. Ratios within one run are what to compare.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of the whole process, and its standard output; a failing command stops the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def accuracy(output: str) -> float:
    return float(re.search(r"test accuracy (\d\.\d+)", output).group(1))


def digit_png(folder: Path) -> Path:
    """One test digit as a PNG, for the predict command."""
    from PIL import Image
    from torchvision import datasets

    path = folder / "digit.png"
    Image.fromarray(datasets.MNIST(str(REPO / "data"), train=False).data[0].numpy()).save(path)
    return path


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds; the median is reported (default 3)")
    args = parser.parse_args(argv)
    python = sys.executable
    times: dict[str, list[float]] = {"plain": [], "project": [], "one batch": [], "predict": []}
    accuracies: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as logs:
        image = digit_png(Path(logs))
        project = [python, "-m", "src.train", "experiment=fast", f"log_dir={logs}"]
        commands = {"plain": [python, "scripts/plain_fast.py", "data"], "project": project}
        for round_ in range(args.rounds):
            for name in ("plain", "project") if round_ % 2 == 0 else ("project", "plain"):
                seconds, output = timed(commands[name])
                times[name].append(seconds)
                accuracies[name] = accuracy(output)
            checkpoint = next(Path(logs).glob("mnist/version_*/checkpoints/last.ckpt"))
            times["one batch"].append(timed([python, "-m", "src.train", "trainer.fast_dev_run=true", f"log_dir={logs}"])[0])
            times["predict"].append(timed([python, "-m", "src.predict", f"ckpt_path={checkpoint}", f"image={image}"])[0])
    median = {name: statistics.median(values) for name, values in times.items()}
    rows = [
        "| command | median wall s | all rounds | test accuracy |",
        "|---|---|---|---|",
        *(
            f"| {name} | {median[name]:.1f} | {', '.join(f'{s:.1f}' for s in times[name])} | "
            f"{f'{accuracies[name]:.4f}' if name in accuracies else ''} |"
            for name in times
        ),
    ]
    text = (
        f"Whole commands, {args.rounds} paired rounds, median (method: python -m benchmarks.bench_command --help).\n\n"
        + "\n".join(rows)
        + f"\n\nplain/project = {median['plain'] / median['project']:.2f} (1.0: as fast as the plain script); each round's "
        + f"own plain/project: {', '.join(f'{p / q:.2f}' for p, q in zip(times['plain'], times['project'], strict=True))}, "
        + f"median {statistics.median(p / q for p, q in zip(times['plain'], times['project'], strict=True)):.2f}\n"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
