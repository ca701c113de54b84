"""Saves the random number generators' state in checkpoints, which Lightning's checkpoints do not hold."""

import random
from typing import Any

import lightning as L
import torch


class RNGState(L.Callback):
    """Puts the torch (CPU and CUDA) and Python RNG states into each checkpoint and restores them on resume: else a
    resumed run draws other dropout masks and augmentations than a straight one. Tensors and ints: ``weights_only``."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        random.setstate(state_dict["python"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
