"""Config values checked against the type hints of the class or function they configure.

Each config group names its target (``_target_: torch.optim.AdamW``), and the target's own signature is the schema:
an unknown key is refused with the closest real one, and a value of the wrong type (``abc`` where a number belongs,
``1.5`` where a whole number belongs, a word a ``Literal`` does not list) is refused before anything runs. Ranges are
the targets' own business (``src/validate.py`` for this project's classes, Lightning and torch for theirs).
"""

import collections.abc
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Union

from hydra.utils import get_object

PRIMITIVES = (bool, int, float, str)


def check_arguments(group: str, node: Mapping[str, Any], given_by_code: Mapping[str, str] | None = None) -> None:
    """Raise ``ValueError("<group>.<key>=<value>: ...")`` for the first key of ``node`` its ``_target_`` does not take,
    or whose value does not fit the target's type hint. ``given_by_code``: the arguments the project passes itself, each
    with what to set instead."""
    given_by_code = given_by_code or {}
    target = get_object(node["_target_"])
    parameters, hints = _parameters(target)
    takes_any_key = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    names = [name for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD and name not in given_by_code]
    for key, value in node.items():
        if key.startswith("_"):  # Hydra's own keys: _target_, _partial_
            continue
        if key in given_by_code:
            raise ValueError(f"{group}.{key}={show(value)}: set by the project; {given_by_code[key]}")
        if key not in parameters:
            if takes_any_key:
                continue
            close = difflib.get_close_matches(key, names, n=1)
            takes = f"it takes {', '.join(names) or 'none'}" if len(names) <= 10 else "see its documentation for what it takes"
            hint = f"did you mean {group}.{close[0]}?" if close else takes
            raise ValueError(f"{group}.{key}={show(value)}: {node['_target_']} has no such argument; {hint}")
        if key in hints and not fits(value, hints[key]):
            wanted = describe(hints[key])
            problem = "no such choice" if wanted.startswith("one of") else "wrong type"
            raise ValueError(f"{group}.{key}={show(value)}: {problem}; use {wanted}")


def _parameters(target: Callable[..., Any]) -> tuple[Mapping[str, inspect.Parameter], dict[str, Any]]:
    """The target's parameters and those of its type hints that resolve (a class: its ``__init__``)."""
    function = target.__init__ if inspect.isclass(target) else target
    parameters = dict(inspect.signature(function).parameters)
    parameters.pop("self", None)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # hints naming what only a type checker imports: check the keys, not the types
        hints = {}
    return parameters, hints


def fits(value: Any, hint: Any) -> bool:
    """Does a plain config value (None, bool, int, float, str, list, dict) fit the type hint?"""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar | typing.ForwardRef | str):
        return True
    if origin in (Union, types.UnionType):
        return any(fits(value, argument) for argument in arguments)
    if origin is Literal:
        return value in arguments
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    sequence = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
    if origin in sequence or hint in sequence:
        items = [argument for argument in arguments if argument is not Ellipsis]
        return isinstance(value, list | tuple) and all(any(fits(v, item) for item in items) for v in value if items)
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if inspect.isclass(hint):  # an object: given as a config node to instantiate, never as a bare number or word
        return isinstance(value, dict) or (value is not None and not isinstance(value, PRIMITIVES) and isinstance(value, hint))
    return True


def describe(hint: Any) -> str:
    """A type hint in words: ``Optional[int]`` -> ``a whole number or null``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        plain = (bool, int, float, str, type(None), list, tuple, dict)
        members = _flatten_union([a for a in arguments if not inspect.isclass(a) or a in plain] or arguments)
        literals = [value for member in members if typing.get_origin(member) is Literal for value in typing.get_args(member)]
        words = [describe(member) for member in members if typing.get_origin(member) is not Literal]
        if literals:
            words.insert(0, "one of " + ", ".join(dict.fromkeys(map(str, literals))))
        return " or ".join(dict.fromkeys(words))
    if origin is Literal:
        return "one of " + ", ".join(map(str, arguments))
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "text", type(None): "null"}
    if hint in words:
        return words[hint]
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable) or hint in (list, tuple):
        items = [argument for argument in arguments if argument is not Ellipsis]
        plural = {int: "whole numbers", float: "numbers", str: "texts", bool: "true or false values"}
        return f"a list of {plural.get(items[0], describe(items[0]))}" if len(set(items)) == 1 else "a list"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return f"a {getattr(hint, '__name__', hint)} (a config with _target_)"


def _flatten_union(members: Collection[Any]) -> list[Any]:
    flat = []
    for member in members:
        nested = typing.get_origin(member) in (Union, types.UnionType)
        flat += _flatten_union(typing.get_args(member)) if nested else [member]
    return flat


def show(value: Any) -> str:
    """A value as a user would type it on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(show, value)) + "]"
    return str(value)
