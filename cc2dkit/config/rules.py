"""What a config field may hold: a type from its annotation and a rule from its metadata.

Every section of the config validates itself when built (``__post_init__`` calls
:func:`validate`): each field's value must have the field's type (ints are accepted for floats,
lists for tuples) and keep its rule (``field(default, lo=, hi=, choices=, multiple=, length=)``).
A violation is one ``ValueError`` naming the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
from typing import Any


def rule(default: Any, **checks: Any) -> Any:
    """A dataclass field with ``default`` and its checks (see :func:`check_value`)."""
    return dataclasses.field(default=default, metadata=checks)


def _type_of(annotation: str, value: Any) -> tuple[bool, Any]:
    """Does ``value`` fit the annotation (``int``, ``float``, ``str``, ``bool``, ``X | None``,
    ``tuple[X, ...]``)? Returns (fits, the value normalised: floats from ints, tuples from lists)."""
    annotation = annotation.replace(" ", "")
    if annotation.endswith("|None"):
        return (True, None) if value is None else _type_of(annotation[:-5], value)
    if annotation.startswith("tuple[") and annotation.endswith(",...]"):
        if not isinstance(value, (tuple, list)):
            return False, value
        items = [_type_of(annotation[6:-5], v) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if "|" in annotation:  # e.g. int|str
        for part in annotation.split("|"):
            ok, v = _type_of(part, value)
            if ok:
                return True, v
        return False, value
    if annotation == "bool":
        return isinstance(value, bool), value
    if annotation == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if annotation == "str":
        return isinstance(value, str), value
    raise TypeError(f"config annotation {annotation!r} is not supported")


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def describe(annotation: str, checks: dict) -> str:
    """What a field allows, in words (for error messages)."""
    a = annotation.replace(" ", "")
    optional = a.endswith("|None")
    a = a[:-5] if optional else a
    if a.startswith("tuple["):
        inner = a[6:-5]
        words = "a list of " + " or ".join(_TYPE_WORDS.get(t, t).split(" ", 1)[-1] + "s" for t in inner.split("|"))
    else:
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in a.split("|"))
    parts = [words]
    if "choices" in checks:
        parts = ["one of " + ", ".join(repr(c) for c in checks["choices"])]
    if "lo" in checks:
        parts.append(f"{'>' if checks.get('lo_open') else '>='} {checks['lo']}")
    if "hi" in checks:
        parts.append(f"{'<' if checks.get('hi_open') else '<='} {checks['hi']}")
    if "multiple" in checks:
        parts.append(f"a multiple of {checks['multiple']}")
    if "length" in checks:
        parts.append(f"of length {checks['length']}")
    if checks.get("nonempty"):
        parts.append("not empty")
    return ", ".join(parts) + (" (or none)" if optional else "")


def check_value(value: Any, checks: dict) -> bool:
    """The rule of one (typed) value; for tuples each item is checked, the length and emptiness as a whole."""
    if value is None:
        return True
    if isinstance(value, tuple):
        if checks.get("nonempty") and not value:
            return False
        if "length" in checks and len(value) != checks["length"]:
            return False
        if checks.get("distinct") and len(set(value)) != len(value):
            return False
        item_checks = {k: v for k, v in checks.items() if k not in ("length", "nonempty", "distinct")}
        return all(check_value(v, item_checks) for v in value)
    if "choices" in checks and value not in checks["choices"]:
        return False
    if checks.get("nonempty") and value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = checks.get("lo"), checks.get("hi")
        if lo is not None and (value <= lo if checks.get("lo_open") else value < lo):
            return False
        if hi is not None and (value >= hi if checks.get("hi_open") else value > hi):
            return False
        if "multiple" in checks and value % checks["multiple"]:
            return False
    return True


def validate(section: Any, name: str) -> None:
    """Check (and normalise, in place) every field of a frozen config section called ``name``."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        key = f"{name}.{f.name}" if name else f.name
        if dataclasses.is_dataclass(value):
            continue
        ok, normal = _type_of(str(f.type), value)
        if not ok or not check_value(normal, dict(f.metadata)):
            raise ValueError(f"config {key}={value!r}: expected {describe(str(f.type), dict(f.metadata))}")
        if normal is not value:
            object.__setattr__(section, f.name, normal)


def parse(text: str, annotation: str, key: str) -> Any:
    """A command-line string for a field of type ``annotation`` (``none``/``null`` for None fields;
    lists as ``1,3`` or ``[1,3]``; booleans as true/false, on/off, yes/no, 1/0)."""
    a = annotation.replace(" ", "")
    optional = a.endswith("|None")
    a = a[:-5] if optional else a
    if optional and text.strip().lower() in ("none", "null"):
        return None
    try:
        if a.startswith("tuple["):
            items = [x.strip() for x in text.strip().strip("[]()").split(",") if x.strip()]
            return tuple(_parse_one(x, a[6:-5]) for x in items)
        return _parse_one(text.strip(), a)
    except ValueError:
        raise ValueError(f"--set {key}={text!r}: expected {describe(annotation, {})}") from None


def _parse_one(text: str, annotation: str) -> Any:
    for t in annotation.split("|"):
        if t == "bool":
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        elif t == "int":
            if text.lstrip("-").isdigit():
                return int(text)
        elif t == "float":
            try:
                return float(text)
            except ValueError:
                pass
        elif t == "str":
            return text
    raise ValueError(text)
