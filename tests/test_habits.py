"""Lightning's and Hydra's own switches and every logger choice, typed alone, through the real command line."""

import re
from pathlib import Path

import pytest

from tests.conftest import TINY_RUN, TinyMNIST, run_many, tiny_data

# (one switch, a line the summary must then hold)
SWITCHES = [
    # the loggers, with the curves picture where metrics are kept (mlflow, whose own UI draws them: test_loggers.py)
    (["logger=tensorboard"], "curves           tensorboard --logdir"),
    (["logger=csv"], "csv/version_0/metrics.csv"),
    (["logger=many"], "metrics          "),
    (["logger=none"], "note: no metrics kept and no curves drawn: logger=none"),
    (["~logger"], "note: no metrics kept and no curves drawn: logger=none"),
    (["trainer.fast_dev_run=true"], "note: nothing written: fast_dev_run"),
    (["trainer.overfit_batches=2"], "best checkpoint"),
    (["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"], "best checkpoint"),  # their callbacks left out
    (["trainer.enable_checkpointing=false"], "note: tested the final weights: no best checkpoint (checkpointing is off)"),
    (["trainer.limit_val_batches=0"], "note: tested the final weights: no best checkpoint (validation never ran)"),
    (["trainer.max_steps=2"], "no best checkpoint (the run ended before its first validation)"),
    (["callbacks.checkpoint.save_top_k=0"], "no best checkpoint (its checkpoint callback keeps none: save_top_k=0)"),
    (["trainer.max_steps=3", "trainer.max_epochs=2", "trainer.limit_train_batches=2"], "3 steps"),  # a one-cycle of 3 steps
    (["trainer.val_check_interval=0.5", "trainer.check_val_every_n_epoch=2", "trainer.max_epochs=2"], "best checkpoint"),
    (["optimizer.eps=1e-7", "+optimizer.foreach=false", "+trainer.min_epochs=1"], "best checkpoint"),  # listed, and +
    (["callbacks=none", "trainer.enable_checkpointing=false"], "no best checkpoint (checkpointing is off)"),
    (["callbacks=minimal"], "best checkpoint"),
    ([f"~callbacks.{name}" for name in ("last_checkpoint", "rng_state", "lr_monitor", "stop_on_ctrl_c")], "best checkpoint"),
    (["callbacks=[default,early_stopping]", "trainer.max_epochs=2"], "best checkpoint"),
    (["debug=fdr"], "note: nothing written: fast_dev_run"),
    (["debug=overfit", "trainer.max_epochs=2"], "run folder       lightning_logs/debug/version_"),
    (["debug=profiler"], "FIT Profiler Report"),
    (["debug=anomaly"], "run folder       lightning_logs/debug/version_"),
    (["print_config=true"], "log_dir: lightning_logs"),
    (["hydra.run.dir=lightning_logs/moved", "hydra.job.chdir=true"], "run folder       lightning_logs/moved/lightning_logs/"),
]


def tiny_run(switch: list[str]) -> list[str]:
    """TINY_RUN, less removals of callbacks another callbacks choice lacks, and with the curves for a choice of logger."""
    other_set = any(argument.startswith("callbacks=") for argument in switch)
    logger = "logger" in " ".join(switch)
    return [a for a in TINY_RUN if not (other_set and a.startswith("~callbacks.") or logger and "curves_png" in a)]


@pytest.mark.slow
def test_each_switch_alone_ends_in_a_summary(tiny_mnist: TinyMNIST, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    commands = [("src.train", work, [*tiny_run(switch), *switch, *tiny_data(tiny_mnist)]) for switch, _ in SWITCHES]
    flags = [["--help"], ["experiment=fast", "--cfg", "job"], ["--cfg", "job", "experiment=fast"]]
    *results, help_text, config, config_too = run_many([*commands, *(("src.train", work, flag) for flag in flags)])
    assert help_text.returncode == 0 and "optimizer: adam, adamw, rmsprop, sgd" in help_text.stdout
    assert all(done.returncode == 0 and "max_epochs: 2" in done.stdout for done in (config, config_too))
    failures = []
    for (switch, expected), done in zip(SWITCHES, results, strict=True):
        if done.returncode != 0 or "test accuracy " not in done.stdout or expected not in done.stdout + done.stderr:
            failures.append(f"{' '.join(switch)} -> exit {done.returncode}: {(done.stdout + done.stderr)[-800:]}")
    assert not failures, "\n\n".join(failures)
    for (switch, _), done in zip(SWITCHES, results, strict=True):  # a calm terminal: nothing said twice, paths relative
        said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip("-= ") and "|" not in line]
        prints_a_table = any(word in " ".join(switch) for word in ("profiler", "print_config"))  # rows may repeat
        assert len(said) == len(set(said)) or prints_a_table, (switch, said)
        assert not any(word in line for line in said for word in ("Warning", "Error")), (switch, said)
        assert not any(re.search(r"\.py:\d+: ", line) for line in said), (switch, said)  # no library's warning
        assert all(not line.split()[-1].startswith("/") for line in said if line.startswith(("run folder", "best checkpoint")))
    assert [path.name for path in work.iterdir()] == ["lightning_logs"]  # runs write under lightning_logs/ only
    runs = list((work / "lightning_logs").glob("*/version_*"))
    assert len(runs) == len(SWITCHES) - 3  # one folder a run; fast_dev_run (twice): none; chdir's: deeper
    folders = [work / line[17:] for done in results[:5] for line in done.stdout.splitlines() if line.startswith("run folder")]
    assert [(folder / "curves.png").is_file() for folder in folders] == [True, True, True, False, False]  # the loggers
