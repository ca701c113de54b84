"""``python scripts/gpu_check.py [--tiny] [--out DIR]``: prove ``trainer.accelerator=gpu`` in one call.

Every step runs the project's own commands as whole processes, as a user types them, each under a time limit; a step
that fails is reported and the others still run. Steps, most important first:

  versions   Python, torch, lightning, the GPU (nvidia-smi)
  loop cost  python -m benchmarks.loop_cost at batch 512 and 4096: ms per optimizer step of the plain loop, of its step
             as one CUDA graph, and of Lightning's loop around that graphed step at K = 1 and 8 optimizer steps per
             Lightning step (split into a cost per Lightning step and one per counted optimizer step): the figure
             the GPU path's design is chosen from
  default    python -m src.train trainer.accelerator=gpu: the default 8-epoch run to its summary
  fast       python -m src.train experiment=fast trainer.accelerator=gpu: time to >= 98% test accuracy
  resume     2 + 2 epochs (resumed with ckpt_path=last) against 4 straight, trainer.deterministic=true, with dropout
             and random shifts: the weights must be bit-equal
  on CPU     the GPU run's best checkpoint through src.eval accelerator=cpu, src.predict and src.export (ONNX)
  bench      python -m benchmarks.bench at batch 512 and 4096 for 32-true and bf16-mixed (--bench adds compile and
             no-checkpoints), path (c) left out: samples/s of the plain loop, of this project's path and of the graphed
             plain loop (d), b/a, b/d, and (b)'s first step
  tutorial   (only when named in --steps; give it --limit 540) experiment=tutorial to its end, the source tutorial's
             20,000 steps: its curve to tutorial_curve.csv and tutorial_curves.png

It writes ``report.md`` (a table per step, the targets, the bench tables) after every step, so a run stopped at its
limit still reports what it did, and ``log.txt`` (every command's output). ``--tiny`` runs the same steps on the
CPU with a few batches each (the test suite does, so the script is known to work before it meets a GPU). On a GPU
machine it is started by ``scripts/gpu_check.sh``, which first installs what that machine lacks.
"""

import argparse
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY_TRAIN = [  # --tiny: a few batches per stage, no pictures
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=2",
    "++callbacks.test_figures=null",  # null: left out, also where the recipe (experiment=fast) has none
    "++callbacks.curves_png=null",
]
RESUME = ["trainer.deterministic=true", "scheduler=none", "model.dropout=0.2", "data.shift=2"]
BENCH_VARIANTS = {
    "32-true": [],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "compile": ["model.compile=true"],
    # what the per-epoch last.ckpt (and the every-200-steps one) costs (b): the same run without them
    "no-checkpoints": ["~callbacks.last_checkpoint", "~callbacks.step_checkpoint"],
}
DEFAULT_BENCH = ["32-true", "bf16-mixed"]
# What the GPU run should reach: (description, step, value name, test).
TARGETS = [
    ("default run >= 98.5% test accuracy", "default", "test_acc", lambda v: v >= 0.985),
    ("default run fit <= 4 s", "default", "fit_s", lambda v: v <= 4),
    ("experiment=fast >= 98% test accuracy", "fast", "test_acc", lambda v: v >= 0.98),
    ("experiment=fast fit <= 1.5 s", "fast", "fit_s", lambda v: v <= 1.5),
    ("bench 32-true b/a >= 1.0 at batch 512", "bench 32-true", "b/a 512", lambda v: v >= 1.0),
    ("bench 32-true b/a >= 1.0 at batch 4096", "bench 32-true", "b/a 4096", lambda v: v >= 1.0),
]


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    result: str
    details: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)  # what the targets are checked against


@dataclass
class Check:
    out: Path
    work: Path
    tiny: bool
    deadline: float
    bench_variants: list[str]
    checkpoint: Path | None = None  # the default run's best checkpoint, for the CPU step
    steps: list[Step] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # a markdown block appended to the report (bench tables)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def command(self, args: list[str], limit: float) -> tuple[int, str, float]:
        """Run ``args`` from the repository root; return (exit code, output, wall seconds). The output goes to log.txt
        with each line's time since the start, which shows where a command's seconds went (start-up, fit, test)."""
        limit = max(1.0, min(limit, self.left()))
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment())
        lines: list[tuple[float, str]] = []
        reader = threading.Thread(
            target=lambda: lines.extend((time.perf_counter() - started, line) for line in process.stdout), daemon=True
        )
        reader.start()
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            process.kill()
            code = 124
            lines.append((limit, f"(stopped after {limit:.0f} s)\n"))
        reader.join(timeout=10)
        seconds = time.perf_counter() - started
        with (self.out / "log.txt").open("a") as log:
            log.write(f"\n$ {shlex.join(args)}   # exit {code}, {seconds:.1f} s\n")
            log.writelines(f"[{at:6.1f}] {line}" for at, line in lines)
        return code, "".join(line for _, line in lines), seconds

    def train(self, *overrides: str, limit: float = 180) -> tuple[int, str, float]:
        accelerator = "cpu" if self.tiny else "gpu"
        args = [sys.executable, "-m", "src.train", f"trainer.accelerator={accelerator}", f"log_dir={self.work}", *overrides]
        return self.command(args + (TINY_TRAIN if self.tiny else []), limit)

    def record(self, step: Step) -> None:
        self.steps.append(step)
        (self.out / "report.md").write_text(report(self))
        print(f"{step.name}: {'ok' if step.ok else 'FAILED'} ({step.seconds:.1f} s) {step.result}", flush=True)


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "LOCAL_RANK", "WORLD_SIZE")} | {
        "PYTHONUNBUFFERED": "1"
    }


def found(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def values_of(output: str, seconds: float) -> dict[str, float]:
    """The whole command's seconds and, where src.train printed its summary, test accuracy and fit seconds."""
    accuracy, fit = found(r"test accuracy (\d\.\d+)", output), found(r"\(fit (\d+\.\d) s\)", output)
    return {"whole_s": seconds} | ({"test_acc": float(accuracy)} if accuracy else {}) | ({"fit_s": float(fit)} if fit else {})


def summary_of(code: int, output: str, seconds: float) -> str:
    """The parts of src.train's summary that the report shows, or why there is none."""
    accuracy, fit = found(r"test accuracy (\d\.\d+)", output), found(r"\(fit (\d+\.\d) s\)", output)
    if code != 0 or accuracy is None:
        return f"exit {code}: " + (output.strip().splitlines() or ["no output"])[-1][:300]
    return f"test accuracy {accuracy}, fit {fit} s, whole command {seconds:.1f} s"


def versions(check: Check) -> None:
    probe = (
        "import platform, torch, lightning, torchmetrics, torchvision; "
        "print('python', platform.python_version(), ', torch', torch.__version__, ', lightning', lightning.__version__, "
        "', torchmetrics', torchmetrics.__version__, ', torchvision', torchvision.__version__); "
        "print('cuda', torch.version.cuda, ', device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')"
    )
    code, output, seconds = check.command([sys.executable, "-c", probe], 60)
    gpu = "none"
    if not check.tiny:
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        smi, smi_output, _ = check.command(query, 30)
        gpu = smi_output.strip() if smi == 0 else f"nvidia-smi failed (exit {smi})"
        check.command(["nvidia-smi"], 30)  # the whole table, into log.txt
    lines = output.strip().splitlines()
    check.record(Step("versions", code == 0, seconds, "; ".join(lines[-2:]), [f"nvidia-smi: {gpu}", platform.platform()]))


def start_up(check: Check) -> None:
    """Where a command's fixed seconds go: importing torch, starting CUDA, importing the project, a one-batch run."""
    device = "cpu" if check.tiny else "cuda"
    probes = {
        "import torch": [sys.executable, "-c", "import torch"],
        f"+ {device} start": [sys.executable, "-c", f"import torch; torch.ones(1, device='{device}').sum().item()"],
        "import src.train": [sys.executable, "-c", "import src.train"],
        "one-batch run": [sys.executable, "-m", "src.train", f"trainer.accelerator={'cpu' if check.tiny else 'gpu'}"]
        + ["trainer.fast_dev_run=true", f"log_dir={check.work}"],
    }
    timings, ok, started = [], True, time.perf_counter()
    for name, args in probes.items():
        code, _, seconds = check.command(args, 120)
        ok &= code == 0
        timings.append(f"{name} {seconds:.1f} s" + ("" if code == 0 else f" (exit {code})"))
    check.record(Step("start-up", ok, time.perf_counter() - started, ", ".join(timings)))


def default_run(check: Check) -> None:
    """The default recipe on the GPU; its best checkpoint is kept for the CPU step."""
    code, output, seconds = check.train("name=default")
    check.record(Step("default", code == 0, seconds, summary_of(code, output, seconds), values=values_of(output, seconds)))
    best = found(r"best checkpoint\s+(\S+)", output)
    check.checkpoint = REPO / best if code == 0 and best else None


def fast_run(check: Check) -> None:
    code, output, seconds = check.train("experiment=fast", "name=fast")
    check.record(Step("fast", code == 0, seconds, summary_of(code, output, seconds), values=values_of(output, seconds)))


def resume_run(check: Check) -> None:
    """4 epochs straight against 2, then 2 more from ckpt_path=last: equal weights, bit for bit."""
    import torch  # here, not at the top: the versions step must report even where torch fails to import

    started = time.perf_counter()
    runs = [("straight", "trainer.max_epochs=4"), ("resumed", "trainer.max_epochs=2"), ("resumed", "trainer.max_epochs=4")]
    for name, epochs in runs:
        resume = ["ckpt_path=last"] if (name, epochs) == runs[2] else []
        code, output, _ = check.train(*RESUME, f"name={name}", epochs, *resume)
        if code != 0:
            check.record(Step("resume", False, time.perf_counter() - started, summary_of(code, output, 0)))
            return
    states = [
        torch.load(check.work / name / "version_0" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
        for name in ("straight", "resumed")
    ]
    weights = [state["state_dict"] for state in states]
    differing = [key for key in weights[0] if not torch.equal(weights[0][key], weights[1][key])]
    steps = [state["global_step"] for state in states]
    result = f"global steps {steps[0]} and {steps[1]}; " + (
        "all weights bit-equal" if not differing else f"{len(differing)} tensors differ: {', '.join(differing[:4])}"
    )
    check.record(Step("resume", not differing and steps[0] == steps[1], time.perf_counter() - started, result))


def on_cpu(check: Check) -> None:
    """The GPU checkpoint where most people read it: src.eval on the CPU, src.predict and an ONNX export."""
    checkpoint = check.checkpoint
    if checkpoint is None:
        check.record(Step("on CPU", False, 0.0, "skipped: the default run left no best checkpoint"))
        return
    image = check.work / "digit.png"
    code, output, _ = check.command([sys.executable, "-c", DIGIT_PNG, str(image)], 60)
    commands = {
        "eval": ["src.eval", f"ckpt_path={checkpoint}", "accelerator=cpu"],
        "predict": ["src.predict", f"ckpt_path={checkpoint}", f"image={image}"],
        "export": ["src.export", f"ckpt_path={checkpoint}", f"out={check.work / 'model.onnx'}"],
    }
    lines, outputs, ok, started = [], {}, code == 0, time.perf_counter()
    for name, args in commands.items():
        code, outputs[name], seconds = check.command([sys.executable, "-m", *args], 120)
        ok &= code == 0
        lines.append(f"{name} ({seconds:.1f} s, exit {code}): {(outputs[name].strip().splitlines() or ['none'])[-1][:200]}")
    accuracy = found(r"test accuracy (\d\.\d+)", outputs["eval"])
    result = f"src.eval on the CPU: test accuracy {accuracy}; predict and export: {'ok' if ok else 'see below'}"
    check.record(Step("on CPU", ok, time.perf_counter() - started, result, lines))


DIGIT_PNG = """import sys
from PIL import Image
from torchvision import datasets
Image.fromarray(datasets.MNIST("data", train=False).data[0].numpy()).save(sys.argv[1])
"""


def table_columns(table: str, first: str, name: str) -> dict[str, float]:
    """The cells of column ``name`` of a markdown table, by the row's first cell (``{"512": 0.41, ...}``)."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ")]
    column = rows[0].index(name)
    return {f"{first} {row[0]}": float(row[column]) for row in rows[1:] if row[column] != "-"}


def loop_cost(check: Check) -> None:
    """What Lightning's loop costs per step once the step itself is a CUDA graph (benchmarks/loop_cost.py)."""
    sizes = ["16"] if check.tiny else ["512", "4096"]
    timing = ["--warmup", "2", "--samples", "64", "--rounds", "1"] if check.tiny else ["--samples", "200000", "--rounds", "3"]
    table = check.work / "loop_cost.md"
    accelerator = "cpu" if check.tiny else "gpu"
    args = [sys.executable, "-m", "benchmarks.loop_cost", "--batch-sizes", *sizes, "--k", "1", "8", *timing, "--out", str(table)]
    code, output, seconds = check.command([*args, f"trainer.accelerator={accelerator}"], 240)
    ok = code == 0 and table.is_file()
    values: dict[str, float] = {}
    if ok:
        text = table.read_text()
        for name, short in (("(d) plain, graphed", "graphed ms"), ("Lightning per call", "per call ms")):
            values |= table_columns(text, short, name)
        values |= table_columns(text, "per step ms", "per counted step")
        check.extra.append("### loop cost\n\n" + text)
    result = ", ".join(f"{name}: {value:.3f}" for name, value in values.items()) if ok else summary_of(code, output, seconds)
    check.record(Step("loop cost", ok, seconds, result, values=values))


def bench(check: Check) -> None:
    sizes = ["16"] if check.tiny else ["512", "4096"]
    timing = ["--warmup", "2", "--samples", "64", "--rounds", "1"] if check.tiny else ["--samples", "200000", "--rounds", "3"]
    accelerator = "cpu" if check.tiny else "gpu"
    for variant in check.bench_variants:
        overrides = BENCH_VARIANTS[variant]
        table = check.work / f"bench-{variant}.md"
        args = ["-m", "benchmarks.bench", "--batch-sizes", *sizes, *timing, "--skip-dataloader", "--out", str(table)]
        args += ["--profile", "25"] if variant == "32-true" else []  # where (b)'s time goes, into log.txt
        code, output, seconds = check.command([sys.executable, *args, f"trainer.accelerator={accelerator}", *overrides], 240)
        ok = code == 0 and table.is_file()
        ratios = table_columns(table.read_text(), "b/a", "b/a") if ok else {}
        check.extra.append(f"### bench, {variant}\n\n" + (table.read_text() if ok else f"failed: exit {code}\n"))
        result = ", ".join(f"{name}: {ratio:.2f}" for name, ratio in ratios.items()) if ok else summary_of(code, output, seconds)
        check.record(Step(f"bench {variant}", ok, seconds, result, values=ratios))


def tutorial(check: Check) -> None:
    """The source tutorial's own run, 20,000 steps of batch 4,096: long on a CPU, minutes on a GPU."""
    short = ["trainer.max_steps=101", "data.batch_size=256"] if check.tiny else []  # tiny: 101 small steps
    code, output, seconds = check.train("experiment=tutorial", "name=tutorial", *short, limit=600)  # within --limit
    values = values_of(output, seconds)
    result = summary_of(code, output, seconds)
    run_dir = check.work / "tutorial" / "version_0"
    if code == 0:
        from src.figures import read_curves  # here: tensorboard's reader is only needed for this step

        curve = read_curves(run_dir).get("acc/test_batch_tutorial", [])
        lines = ["step,test_batch_accuracy", *(f"{step},{value:.4f}" for step, value in curve)]
        (check.out / "tutorial_curve.csv").write_text("\n".join(lines) + "\n")
        if (run_dir / "curves.png").is_file():
            shutil.copyfile(run_dir / "curves.png", check.out / "tutorial_curves.png")
        if curve:
            values["last_test_batch_acc"] = curve[-1][1]
            result += f"; first 5,000 test images after step {curve[-1][0]}: {curve[-1][1]:.4f}"
    check.record(Step("tutorial", code == 0, seconds, result, values=values))


def targets(check: Check) -> list[str]:
    """Each target with what was measured against it: met, not met, or not measured."""
    if check.tiny:
        return ["Targets: not checked in tiny mode (a few batches on the CPU)."]
    measured = {(step.name, name): value for step in check.steps for name, value in step.values.items()}
    lines = ["| target | measured | |", "|---|---|---|"]
    for description, step, name, test in TARGETS:
        value = measured.get((step, name))
        verdict = "not measured" if value is None else "met" if test(value) else "not met"
        lines.append(f"| {description} | {'-' if value is None else f'{value:g}'} | {verdict} |")
    return lines


def report(check: Check) -> str:
    where = "CPU, tiny mode" if check.tiny else "GPU"
    lines = [
        f"# GPU check ({where}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| step | ok | seconds | result |",
        "|---|---|---|---|",
        *(f"| {s.name} | {'yes' if s.ok else 'NO'} | {s.seconds:.1f} | {s.result} |" for s in check.steps),
        "",
        *(f"- {s.name}: {detail}" for s in check.steps for detail in s.details),
        "",
        *targets(check),
        "",
        *check.extra,
    ]
    return "\n".join(lines) + "\n"


STEPS = {
    "loop-cost": loop_cost,
    "start-up": start_up,
    "default": default_run,
    "fast": fast_run,
    "resume": resume_run,
    "cpu": on_cpu,
    "bench": bench,
    "tutorial": tutorial,
}
DEFAULT_STEPS = [step for step in STEPS if step != "tutorial"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the same steps on the CPU, a few batches each")
    parser.add_argument("--out", type=Path, default=REPO / "lightning_logs" / "gpu_check", help="report.md and log.txt")
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a new temporary folder)")
    parser.add_argument("--limit", type=float, default=480, help="seconds for all steps together (default 480)")
    parser.add_argument("--steps", nargs="+", default=DEFAULT_STEPS, choices=list(STEPS), help="default: all but tutorial")
    parser.add_argument("--bench", nargs="+", default=DEFAULT_BENCH, choices=list(BENCH_VARIANTS))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))).resolve()
    check = Check(args.out.resolve(), work, args.tiny, time.monotonic() + args.limit, args.bench)
    versions(check)
    for name, step in STEPS.items():
        if name in args.steps:
            step(check)
    print(f"\n{report(check)}")
    return 0 if all(step.ok for step in check.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
