"""The benchmark (benchmarks/bench.py) in a tiny mode: it runs all three paths and its ratios come from its own timings.
Measuring tools, run apart from the README's suite: ``pytest -m tooling`` (.ci/run runs both)."""

import pytest
import torch

from benchmarks import bench, loop_cost
from benchmarks.cuda_graph import whole_step

pytestmark = pytest.mark.tooling


def test_tiny_bench_reports_its_own_ratios(real_mnist, tmp_path) -> None:
    out = tmp_path / "bench.md"
    timings = bench.main(["--batch-sizes", "32", "64", "--warmup", "2", "--samples", "640", "--rounds", "1", "--out", str(out)])
    assert {(t.path, t.batch_size) for t in timings} == {(p, b) for p in ("plain", "lightning", "dataloader") for b in (32, 64)}
    assert all(t.samples_per_s > 0 for t in timings)
    text = out.read_text()
    assert "Method:" in text
    speed = {(t.path, t.batch_size): t.samples_per_s for t in timings}
    first = {(t.path, t.batch_size): t.first_step_s for t in timings}
    for batch in (32, 64):  # the printed ratios are the measured speeds' ratios (not of the rounded cells)
        (row,) = [line for line in text.splitlines() if line.startswith(f"| {batch} ")]
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        a, b, c = (speed[(path, batch)] for path in ("plain", "lightning", "dataloader"))
        assert cells[1:5] == [f"{a:,.0f}", f"{b:,.0f}", f"{c:,.0f}", "-"]  # (d), the graphed loop: only on CUDA
        assert cells[5:8] == [f"{b / a:.2f}", f"{b / c:.2f}", "-"]
        assert [float(seconds) for seconds in cells[8].split(" / ")] == [
            round(speed_first, 2) for speed_first in (first[("plain", batch)], first[("lightning", batch)])
        ]  # the first steps, timed on their own


def test_timed_steps_cover_the_samples_with_a_floor() -> None:
    assert bench.timed_steps(12_800, 128) == 100
    assert bench.timed_steps(12_800, 4096) == 20


def test_bench_without_the_dataloader_path_in_bf16(real_mnist, tmp_path) -> None:
    """The GPU check's form: (a) and (b) only, bf16-mixed for both (the plain loop under torch.autocast)."""
    out = tmp_path / "bench.md"
    arguments = ["--batch-sizes", "64", "--warmup", "2", "--samples", "320", "--rounds", "1", "--skip-dataloader"]
    timings = bench.main([*arguments, "--out", str(out), "trainer.precision=bf16-mixed"])
    assert {t.path for t in timings} == {"plain", "lightning"}
    (row,) = [line for line in out.read_text().splitlines() if line.startswith("| 64 ")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert [cells[3], cells[6]] == ["-", "-"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--batch-sizes", "0"], "argument --batch-sizes: 0: use a whole number >= 1"),
        (["--rounds", "0"], "argument --rounds: 0: use a whole number >= 1"),
        (["--warmup", "-1"], "argument --warmup: -1: use a whole number >= 0"),
        (["--samples", "many"], "argument --samples: many: use a whole number >= 1"),
    ],
)
def test_counts_below_their_floor_are_refused_before_anything_runs(arguments, message, capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as stop:
        bench.main([*arguments, "--out", str(tmp_path / "bench.md")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bench.md").exists()


def test_the_whole_step_is_one_plain_training_step() -> None:
    """What the graph captures (run eagerly here: no CUDA) updates the weights as the plain loop's step does."""
    torch.manual_seed(0)
    images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    nets = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    optimizers = [torch.optim.AdamW(net.parameters(), lr=0.01) for net in nets]
    loss = torch.zeros(())
    step = whole_step(nets[0], optimizers[0], lambda: (images, labels), loss)
    for _ in range(3):
        step()
        expected = torch.nn.functional.cross_entropy(nets[1](images), labels)
        optimizers[1].zero_grad()
        expected.backward()
        optimizers[1].step()
        assert torch.equal(loss, expected.detach())
    assert all(torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True))


def test_loop_cost_counts_optimizer_steps_and_splits_its_cost(real_mnist, tmp_path) -> None:
    """Lightning's loop around the (here eager) whole step, K = 1 and 2: the table has every column, and the split
    into a per-call and a per-step cost is solved from the two (e) - (d) cells it prints."""
    out = tmp_path / "loop_cost.md"
    text = loop_cost.main(["--batch-sizes", "16", "--k", "1", "2", "--warmup", "2", "--samples", "64", "--rounds", "1",
                           "--out", str(out), "trainer.accelerator=cpu"])  # fmt: skip
    assert out.read_text() == text and "no CUDA: nothing captured" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| 16 ")]
    cells = [float(cell) for cell in row.strip("|").split("|")[1:]]
    a, d, e1, e2, extra1, extra2, per_call, per_step = cells
    assert all(value > 0 for value in (a, d, e1, e2))
    assert abs(extra1 - (e1 - d)) < 2e-3 and abs(extra2 - (e2 - d)) < 2e-3  # (from the rounded cells)
    assert abs(per_call / 1 + per_step - extra1) < 5e-3 and abs(per_call / 2 + per_step - extra2) < 5e-3
