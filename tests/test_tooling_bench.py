"""The benchmark (benchmarks/bench.py) in a tiny mode: it runs all three paths and its ratios come from its own timings.
Measuring tools, run apart from the README's suite: ``pytest -m tooling`` (.ci/run runs both)."""

import pytest

from benchmarks import bench

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
        assert cells[1:4] == [f"{a:,.0f}", f"{b:,.0f}", f"{c:,.0f}"]
        assert cells[4:6] == [f"{b / a:.2f}", f"{b / c:.2f}"]
        assert [float(seconds) for seconds in cells[6].split(" / ")] == [
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
    assert [cell.strip() for cell in row.strip("|").split("|")][3:6:2] == ["-", "-"]


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
