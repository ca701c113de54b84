"""The benchmark in a tiny mode: it runs all three paths and its ratios come from its own timings."""

import pytest

from src import bench


@pytest.mark.slow
def test_tiny_bench_reports_its_own_ratios(real_mnist, tmp_path) -> None:
    out = tmp_path / "bench.md"
    timings = bench.main(["--batch-sizes", "32", "64", "--warmup", "2", "--samples", "640", "--rounds", "1", "--out", str(out)])
    assert {(t.path, t.batch_size) for t in timings} == {(p, b) for p in ("plain", "lightning", "dataloader") for b in (32, 64)}
    assert all(t.samples_per_s > 0 for t in timings)
    text = out.read_text()
    assert "Method:" in text
    rows = [line for line in text.splitlines() if line.startswith("| 32 ") or line.startswith("| 64 ")]
    assert len(rows) == 2
    for row in rows:
        batch, a, b, c, b_over_a, b_over_c = (cell.strip().replace(",", "") for cell in row.strip("|").split("|"))
        assert float(b_over_a) == pytest.approx(float(b) / float(a), abs=0.006)
        assert float(b_over_c) == pytest.approx(float(b) / float(c), abs=0.006)


def test_timed_steps_cover_the_samples_with_a_floor() -> None:
    assert bench.timed_steps(12_800, 128) == 100
    assert bench.timed_steps(12_800, 4096) == 20
