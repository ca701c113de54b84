"""Lightning's ModelCheckpoint for a run folder that may move: a copy on another machine, a renamed folder."""

import functools
from datetime import timedelta
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from pydantic import TypeAdapter


class RunCheckpoint(ModelCheckpoint):
    """Saves as ``ModelCheckpoint`` does; on resume, the paths its state names (the best, the k-th best, the last) are
    read in this run's own checkpoints folder, wherever the run now lies: Lightning's would test a copied run's best
    checkpoint where it is not, and forget a renamed run's best scores. A best checkpoint missing from the folder is
    forgotten with its score (:func:`src.checkpoints.missing_best` says so before training)."""

    @functools.wraps(ModelCheckpoint.__init__)  # its signature, which the config is checked against
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if isinstance(interval := kwargs.get("train_time_interval"), str):  # a config's "00:05:00": Lightning takes timedelta
            kwargs["train_time_interval"] = TypeAdapter(timedelta).validate_python(interval)
        super().__init__(*args, **kwargs)

    @property
    def state_key(self) -> str:
        # Lightning's own class name in the key: checkpoints written with ModelCheckpoint restore into this class.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        def here(path: str | None) -> str:
            return str(Path(self.dirpath) / Path(path).name) if path and self.dirpath else ""

        best_k = {here(path): score for path, score in state_dict.get("best_k_models", {}).items() if Path(here(path)).is_file()}
        paths = {key: here(state_dict.get(key)) for key in ("best_model_path", "kth_best_model_path", "last_model_path")}
        moved = state_dict | paths | {"dirpath": self.dirpath, "best_k_models": best_k}
        if not Path(moved["best_model_path"]).is_file():
            moved |= {"best_model_path": "", "best_model_score": None}
        super().load_state_dict(moved)
