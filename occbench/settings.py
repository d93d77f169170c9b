"""One schema for settings: the type, range or choices of every value a profile or `--cfg-options` can
set, declared beside the code that reads it, and the check every resolved profile passes before a grid
plans a single stage.

A schema is a dict from a setting's name to a `Setting` (a leaf), to another schema (a nested
section), or to `ByType` (a section whose keys depend on its ``type``, as an optimizer's do). Where a
setting comes from:

* the core: `DATA` here, `occbench.engine.PRETRAIN` (epochs, optimizer, schedule, precision) and
  `occbench.nn.stgcn.STGCN.schema` (the encoder);
* a method: its class's `defaults` name its settings; `schema` gives their types and ranges (a setting
  without one takes the type of its default);
* a protocol: the function's `schema` (or only `settings`, a set of names);
* an imputer: like a method, its class's `defaults` and `schema` (`occbench.impute.Imputer`).

Why strict: a misspelt key or a value of the wrong type would otherwise be ignored or replaced by a
default somewhere deep in a run, and give a number that is not what its record says.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from occbench.errors import OccbenchError

KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list"}


@dataclass(frozen=True)
class Setting:
    kind: str  # a key of KINDS
    low: float | None = None  # the smallest value allowed
    high: float | None = None  # the largest value allowed
    above: bool = False  # low itself is not allowed (a learning rate of 0)
    below: bool = False  # high itself is not allowed (a dropout of 1)
    choices: tuple = ()
    item: Setting | None = None  # each item of a list

    def check(self, key: str, value: Any) -> None:
        if not _is(self.kind, value):
            raise OccbenchError(f"{key}={value!r}: expected {KINDS[self.kind]}{self._range()}")
        if self.choices and value not in self.choices:
            raise OccbenchError(f"{key}={value!r}: use {' or '.join(map(str, self.choices))}")
        if self.kind in ("int", "float"):
            if not math.isfinite(value):
                raise OccbenchError(f"{key}={value!r}: expected a finite number{self._range()}")
            too_low = self.low is not None and (value < self.low or (self.above and value == self.low))
            too_high = self.high is not None and (value > self.high or (self.below and value == self.high))
            if too_low or too_high:
                raise OccbenchError(f"{key}={value!r}: out of range; expected {KINDS[self.kind]}{self._range()}")
        if self.item is not None:
            for index, item in enumerate(value):
                self.item.check(f"{key}[{index}]", item)

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {'(' if self.above else '['}{self.low}, {self.high}{')' if self.below else ']'}"
        if self.low is not None:
            return f" {'>' if self.above else '>='} {self.low}"
        if self.high is not None:
            return f" {'<' if self.below else '<='} {self.high}"
        return ""


@dataclass(frozen=True)
class ByType:
    """A section whose `type` picks its schema (an SGD optimizer has momentum, an Adam one betas)."""

    variants: dict  # type name -> schema of the other keys


def integer(low: int | None = None, high: int | None = None) -> Setting:
    return Setting("int", low, high)


def number(low: float | None = None, high: float | None = None, above: bool = False, below: bool = False) -> Setting:
    return Setting("float", low, high, above, below)


def flag() -> Setting:
    return Setting("bool")


def one_of(*choices: str) -> Setting:
    return Setting("str", choices=choices)


def text() -> Setting:
    return Setting("str")


def listing(item: Setting) -> Setting:
    return Setting("list", item=item)


def _is(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"bool": bool, "str": str, "list": (list, tuple)}[kind])


def typed_like(defaults: dict, declared: dict | None = None) -> dict:
    """A schema for `defaults`: the `declared` settings as declared, the others typed like their default
    (an int default takes integers, a float one numbers, ...)."""
    declared = declared or {}
    schema = {}
    for name, default in defaults.items():
        if name in declared:
            schema[name] = declared[name]
        elif isinstance(default, bool):
            schema[name] = flag()
        elif isinstance(default, int):
            schema[name] = integer()
        elif isinstance(default, float):
            schema[name] = number()
        elif isinstance(default, str):
            schema[name] = text()
        elif isinstance(default, (list, tuple)):
            schema[name] = Setting("list")
        else:
            schema[name] = ANY
    return schema | {name: rule for name, rule in declared.items() if name not in schema}


ANY = None  # a setting whose value is not checked (a plugin's own object, say)

DATA = {"frames": integer(1), "batch_size": integer(1)}


def check(schema: dict, values: Any, where: str) -> None:
    """Raise a one-line OccbenchError for the first key of `values` (at any depth) that `schema` does not
    have, or whose value it does not allow; `where` is the dotted key of `values` itself."""
    if not isinstance(values, dict):
        raise OccbenchError(f"{where}={values!r}: expected a mapping of settings")
    for key, value in values.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in schema:
            raise OccbenchError(unknown(name, key, schema))
        rule = schema[key]
        if isinstance(rule, ByType):
            check_by_type(rule, value, name)
        elif isinstance(rule, dict):
            check(rule, value, name)
        elif rule is not ANY:
            rule.check(name, value)


def check_by_type(rule: ByType, values: Any, where: str) -> None:
    if not isinstance(values, dict):
        raise OccbenchError(f"{where}={values!r}: expected a mapping with a type")
    kind = values.get("type")
    if kind not in rule.variants:
        raise OccbenchError(f"{where}.type={kind!r}: use one of {', '.join(rule.variants)}")
    check({"type": ANY, **rule.variants[kind]}, values, where)


def unknown(name: str, key: str, schema: dict, what: str = "setting") -> str:
    """'pretrain.epoch: unknown setting; did you mean pretrain.epochs? (pretrain has ...)'"""
    where = name.rpartition(".")[0]
    close = difflib.get_close_matches(str(key), [str(k) for k in schema], n=1, cutoff=0.6)
    hint = f"; did you mean {where + '.' if where else ''}{close[0]}?" if close else ""
    has = ", ".join(sorted(map(str, schema))) or "nothing"
    return f"{name}: unknown {what}{hint} ({where or 'a profile'} has {has})"
