"""Typed validation of parameters against dataclass field annotations, with one message template.

Sampler hyper-parameters, dataset options and the experiment spec are dataclass fields; their annotations say what
a value may be (``bool``, ``int``, ``float``, ``str``, ``X | None``, ``Literal[...]``, ``tuple[str, ...]``) and
`param` adds a range (``low``/``high``, open or closed) in the field's metadata, as scikit-learn's
``Interval`` constraints do. `check_fields` checks a mapping of values against a class before anything is built,
so a typo (``exclude_border=ture``) or a wrong kind of number (``k=2.5``) is one line before any training:

    {owner}: {name} must be {expectation}, got {value!r}      (or, without an owner, "{name} must be ...")

Only values are checked and normalised (an int given for a float becomes a float); nothing is guessed: strings are
never parsed into numbers or booleans here (the command-line parsers decide what a string means).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RANGE_KEY = "alpose_bench.range"


class ParameterError(ValueError):
    """A value that does not fit its field; the message is one line following the template above."""


@dataclass(frozen=True)
class Range:
    """The numbers a field accepts: low <= value <= high (`low_open`/`high_open` make that bound strict)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """True when `value` lies inside the range."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """The range in words: "positive", "zero or positive", "at least 3", "between 0 and 1" ..."""
        if self.high is None:
            if self.low == 0:
                return "positive" if self.low_open else "zero or positive"
            if self.low is None:
                return "a number"
            return f"greater than {_num(self.low)}" if self.low_open else f"at least {_num(self.low)}"
        if self.low is None:
            return f"less than {_num(self.high)}" if self.high_open else f"at most {_num(self.high)}"
        low = "(" if self.low_open else "["
        high = ")" if self.high_open else "]"
        return f"in {low}{_num(self.low)}, {_num(self.high)}{high}"


def _num(x: float) -> str:
    if float(x).is_integer():
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    return f"{x:g}"


def param(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A dataclass field with a default and an optional numeric range, e.g. ``k: int = param(30, low=1)``."""
    metadata = {}
    if low is not None or high is not None:
        metadata[RANGE_KEY] = Range(low, high, low_open, high_open)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass's fields (string annotations of `from __future__` modules included),
    each evaluated in the module of the class that declares the field (an unresolvable one is not checked)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        owner = next((k for k in cls.__mro__ if f.name in k.__dict__.get("__annotations__", {})), cls)
        holder = type("_Field", (), {"__annotations__": {f.name: f.type}, "__module__": owner.__module__})
        try:
            out[f.name] = typing.get_type_hints(holder)[f.name]
        except Exception:
            out[f.name] = Any
    return out


def _is_union(tp: Any) -> bool:
    return get_origin(tp) is typing.Union or isinstance(tp, types.UnionType)


def describe_type(tp: Any) -> str:
    """What a value of annotation `tp` is, in words (for messages)."""
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if _is_union(tp):
        args = [a for a in get_args(tp) if a is not type(None)]
        text = " or ".join(describe_type(a) for a in args)
        return f"{text} or none" if len(args) < len(get_args(tp)) else text
    if get_origin(tp) in (tuple, list):
        inner = get_args(tp)[0] if get_args(tp) else Any
        return f"a list of {describe_type(inner).removeprefix('a ').removeprefix('an ')}s"
    return getattr(tp, "__name__", str(tp))


def _fail(owner: str, name: str, expectation: str, value: Any) -> ParameterError:
    where = f"{owner}: {name}" if owner else name
    return ParameterError(f"{where} must be {expectation}, got {value!r}")


def check_value(owner: str, name: str, value: Any, tp: Any, rng: Range | None = None) -> Any:
    """`value` checked against annotation `tp` (and `rng`), normalised (int -> float for float fields).

    Raises ParameterError with the module's message template."""
    if tp is Any:
        return value
    if _is_union(tp):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_value(owner, name, value, arg, rng)
            except ParameterError as exc:
                if len([a for a in args if a is not type(None)]) == 1:
                    raise exc from None
        raise _fail(owner, name, describe_type(tp), value)
    if get_origin(tp) is Literal:
        allowed = get_args(tp)
        if any(value == a and type(value) is type(a) for a in allowed):
            return value
        raise _fail(owner, name, describe_type(tp), value)
    if get_origin(tp) in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _fail(owner, name, describe_type(tp), value)
        inner = get_args(tp)[0] if get_args(tp) else Any
        items = [check_value(owner, name, v, inner, rng) for v in value]
        return tuple(items) if get_origin(tp) is tuple else items
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(owner, name, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(owner, name, "a whole number", value)
        return _in_range(owner, name, int(value), rng)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(owner, name, "a number", value)
        if not math.isfinite(value):
            raise _fail(owner, name, "a finite number", value)
        return _in_range(owner, name, float(value), rng)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # a number given for a text field is its text (`--option test_sequences=2`)
        if not isinstance(value, str):
            raise _fail(owner, name, "a string", value)
        if "\0" in value:
            raise _fail(owner, name, "a string without NUL characters", value)
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise _fail(owner, name, describe_type(tp), value)
        return value
    return value  # an annotation this validator does not know (dict[...] and such): the owner checks it


def _in_range(owner: str, name: str, value: float, rng: Range | None) -> Any:
    if rng is not None and not rng.contains(value):
        raise _fail(owner, name, rng.describe(), value)
    return value


def field_range(f: dataclasses.Field) -> Range | None:
    """The `Range` a field was declared with (`param(..., low=...)`), or None."""
    return f.metadata.get(RANGE_KEY)


def check_fields(
    cls: type, values: Mapping[str, Any], owner: str, *, what: str = "parameter"
) -> dict[str, Any]:
    """Check `values` against the fields of dataclass `cls`: unknown names and wrong values raise ParameterError.

    Returns the normalised values (only those given)."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        names = ", ".join(repr(u) for u in unknown)
        raise ParameterError(f"{owner} has no {what} {names}; its {what}s: {known}")
    types_ = field_types(cls)
    return {
        name: check_value(owner, name, value, types_[name], field_range(fields[name]))
        for name, value in values.items()
    }


def check_instance(obj: Any, owner: str) -> None:
    """Check every field value of a dataclass instance (what `__post_init__` calls on direct construction)."""
    cls = type(obj)
    types_ = field_types(cls)
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        normalised = check_value(owner, f.name, value, types_[f.name], field_range(f))
        if normalised is not value and not isinstance(normalised, (tuple, list)):
            object.__setattr__(obj, f.name, normalised)


def parse_value(raw: str) -> Any:
    """The one grammar of `KEY=VALUE` values on the command line (`--sampler-param`, `--dataset-option`, `data
    --option`): a TOML value where the text is one (`3`, `1_000`, `2.5`, `true`, `"text"`, `[1, 2]`), else the text
    itself as a string (`bbox`); the parameter's declared type then checks it."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
