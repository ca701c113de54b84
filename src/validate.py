"""Argument checks for the classes that take settings (the network, the classifier, the DataModule).

Each raises ``ValueError("<name>=<value>: <what is wrong>; <what to use>")`` naming the argument as the class knows
it; the entry points add the config group in front (``data.`` + ``shift=14: ...``) and print the one line.
"""

import re
from collections.abc import Collection, Mapping
from typing import Any


def whole_number(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an int in ``[low, high]``; ``True``/``1.5``/``"3"`` are refused, not converted."""
    allowed = f"{low} to {high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value}: wrong type; use a whole number {allowed}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name}={value}: out of range; use a whole number {allowed}")
    return value


def number(
    name: str, value: Any, low: float, high: float | None = None, *, above_low: bool = False, below_high: bool = False
) -> float:
    """``value`` as a float if it is a number in the range; ``above_low``/``below_high`` exclude the ends."""
    low_text = f"> {low:g}" if above_low else f">= {low:g}"
    allowed = low_text + ("" if high is None else f" and {'<' if below_high else '<='} {high:g}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value}: wrong type; use a number {allowed}")
    too_low = value <= low if above_low else value < low
    too_high = high is not None and (value >= high if below_high else value > high)
    if too_low or too_high:
        raise ValueError(f"{name}={value}: out of range; use a number {allowed}")
    return float(value)


def one_of(name: str, value: Any, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value}: no such choice; use one of {', '.join(choices)}")
    return value


def named_setting(group: str, settings: Mapping[str, Any], message: str) -> str:
    """``message`` from a library (torch, Lightning) prefixed with the setting it is about: the one whose name it
    mentions, else the one whose value it quotes (``optimizer.weight_decay=-1: Invalid weight_decay value: -1``)."""

    def quoted(value: Any) -> bool:
        values = value if isinstance(value, list | tuple) else [value]
        shown = [str(v) for v in values if not isinstance(v, dict | bool) and v is not None]
        return any(re.search(rf"(?<![\w.-]){re.escape(v)}(?![\w.])", message) for v in shown)

    keys = [key for key in settings if not key.startswith("_")]
    if any(message.startswith(f"{key}=") for key in keys):  # already named by this project's own check
        return f"{group}.{message}"
    for key in [k for k in keys if re.search(rf"\b{re.escape(k)}\b", message)] or [k for k in keys if quoted(settings[k])]:
        value = settings[key]
        shown = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list | tuple) else value
        return f"{group}.{key}={shown}: {message}"
    return f"{group}: {message}"
