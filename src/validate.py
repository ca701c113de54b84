"""Range checks for this project's classes: each raises :class:`SettingError` naming the argument as the class knows
it (``shift=14: ...``), and the builder puts the config group in front (``data.shift=14: ...``). A wrong type is refused
too, for callers that build the classes from Python (a config's types: ``src/checks.py``)."""

from collections.abc import Collection
from typing import Any


def show(value: Any) -> str:
    """A value as it is typed on the command line: ``true``, ``null``, ``[512,512]``."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(show, value)) + "]"
    return str(value)


class SettingError(ValueError):
    """An argument a class refuses: ``<name>=<value>: <what is wrong>; <what to use>``, with ``name`` kept apart."""

    def __init__(self, name: str, value: Any, problem: str) -> None:
        super().__init__(f"{name}={show(value)}: {problem}")
        self.name, self.value, self.problem = name, value, problem


def whole_number(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an int in ``[low, high]``; ``True``/``1.5``/``"3"`` are refused, not converted."""
    allowed = f"{low} to {high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(name, value, f"wrong type; use a whole number {allowed}")
    if value < low or (high is not None and value > high):
        raise SettingError(name, value, f"out of range; use a whole number {allowed}")
    return value


def number(
    name: str, value: Any, low: float, high: float | None = None, *, above_low: bool = False, below_high: bool = False
) -> float:
    """``value`` as a float if it is a number in the range; ``above_low``/``below_high`` exclude the ends."""
    low_text = f"> {low:g}" if above_low else f">= {low:g}"
    allowed = low_text + ("" if high is None else f" and {'<' if below_high else '<='} {high:g}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingError(name, value, f"wrong type; use a number {allowed}")
    too_low = value <= low if above_low else value < low
    too_high = high is not None and (value >= high if below_high else value > high)
    if too_low or too_high:
        raise SettingError(name, value, f"out of range; use a number {allowed}")
    return float(value)


def one_of(name: str, value: Any, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise SettingError(name, value, f"no such choice; use one of {', '.join(choices)}")
    return value
