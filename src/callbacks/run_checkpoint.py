"""Lightning's ModelCheckpoint for a run folder that may move: a copy on another machine, a renamed folder."""

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """Saves as Lightning's ``ModelCheckpoint`` does; on resume, the paths its state names (the best checkpoint, the
    k-th best, the last) are read in this run's own checkpoints folder, wherever the run now lies. Lightning restores
    them as they were written: a copied run tests a best checkpoint that is not there, a renamed one forgets the best
    scores. A best checkpoint that is not in the folder is forgotten with its score (:func:`src.config.missing_best`
    says so before training), and the best is chosen among the validations to come."""

    @property
    def state_key(self) -> str:
        # Lightning's own class name in the key: checkpoints written with ModelCheckpoint restore into this class.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        def here(path: str | None) -> str:
            return str(Path(self.dirpath) / Path(path).name) if path and self.dirpath else ""

        best_k = {here(path): score for path, score in state_dict.get("best_k_models", {}).items() if Path(here(path)).is_file()}
        moved = state_dict | {
            "dirpath": self.dirpath,
            "best_k_models": best_k,
            "kth_best_model_path": here(state_dict.get("kth_best_model_path")),
            "last_model_path": here(state_dict.get("last_model_path")),
            "best_model_path": here(state_dict.get("best_model_path")),
        }
        if not Path(moved["best_model_path"]).is_file():
            moved |= {"best_model_path": "", "best_model_score": None}
        super().load_state_dict(moved)
