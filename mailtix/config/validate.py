"""Check raw TOML data against the schema, collecting every problem with its location."""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from mailtix.config.schema import Key
from mailtix.errors import Problem

DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_duration(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 12h or 1d")
    if isinstance(value, int) and value >= 0:
        return value
    m = DURATION.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ValueError("expected a duration such as 30m, 12h or 1d")
    return int(m.group(1)) * UNITS[m.group(2)]


class Checker:
    def __init__(self, file: Path) -> None:
        self.file = str(file)
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.file, where, message))

    def table(self, data: Any, spec: dict[str, Key], where: str) -> dict[str, Any]:
        """Return the table with defaults filled in; unknown keys and bad values are problems."""
        if not isinstance(data, dict):
            self.add(where, f"expected a table, got {type(data).__name__}")
            return {k: key.default for k, key in spec.items() if key.kind not in ("named",)}
        out: dict[str, Any] = {}
        for name in data:
            if name not in spec:
                close = difflib.get_close_matches(name, list(spec), n=1)
                tip = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(_join(where, name), f"unknown key{tip}")
        for name, key in spec.items():
            path = _join(where, name)
            if name not in data:
                if key.required:
                    self.add(path, f"missing required key ({key.doc})")
                out[name] = _default(key)
                continue
            out[name] = self.value(data[name], key, path)
        return out

    def value(self, value: Any, key: Key, path: str) -> Any:
        kind = key.kind
        try:
            if kind in ("str", "path"):
                if not isinstance(value, str):
                    raise ValueError(f"expected a string, got {_type(value)}")
                if "\n" in value and kind == "path":
                    raise ValueError("a path cannot contain a line break")
            elif kind == "email":
                if not isinstance(value, str):
                    raise ValueError(f"expected an e-mail address, got {_type(value)}")
                if value and not EMAIL.match(value):
                    raise ValueError(f"{value!r} is not an e-mail address (name@domain)")
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"expected true or false, got {_type(value)}")
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"expected a whole number, got {_type(value)}")
                self._range(value, key)
            elif kind == "float":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"expected a number, got {_type(value)}")
                self._range(value, key)
                value = float(value)
            elif kind == "enum":
                if value not in key.choices:
                    shown = ", ".join(repr(c) for c in key.choices if c)
                    raise ValueError(f"expected one of {shown}, got {value!r}")
            elif kind == "list":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("expected a list of strings")
            elif kind == "map":
                if not isinstance(value, dict):
                    raise ValueError("expected a table of names and strings")
                for name, text in value.items():
                    if not isinstance(text, str) or not text.strip():
                        self.add(_join(path, name), f"expected a column name, got {_type(text)}")
                value = {k: t for k, t in value.items() if isinstance(t, str) and t.strip()}
            elif kind == "date":
                if isinstance(value, datetime):
                    value = value.date()
                elif isinstance(value, str):
                    value = date.fromisoformat(value)
                elif not isinstance(value, date):
                    raise ValueError(f"expected a date (YYYY-MM-DD), got {_type(value)}")
            elif kind == "duration":
                value = parse_duration(value)
            elif kind == "table":
                assert key.table is not None
                value = self.table(value, key.table, path)
            elif kind == "tables":
                assert key.table is not None
                if not isinstance(value, list):
                    raise ValueError("expected an array of tables ([[...]])")
                value = [self.table(v, key.table, f"{path}[{i}]") for i, v in enumerate(value)]
            elif kind == "named":
                assert key.table is not None
                if not isinstance(value, dict):
                    raise ValueError("expected a table of named tables")
                out = {}
                for name, inner in value.items():
                    if not NAME.match(name):
                        self.add(_join(path, name), "names use letters, digits, '.', '_', '-'")
                    out[name] = self.table(inner, key.table, _join(path, name))
                value = out
        except ValueError as exc:
            self.add(path, str(exc))
            return _default(key)
        return value

    def _range(self, value: float, key: Key) -> None:
        if key.lo is not None and value < key.lo or key.hi is not None and value > key.hi:
            hi = "" if key.hi is None else f"..{key.hi:g}"
            raise ValueError(f"{value} is out of range ({key.lo:g}{hi})")


def _default(key: Key) -> Any:
    if key.kind == "named":
        return {}
    if key.kind == "tables":
        return []
    if key.kind == "duration":
        return parse_duration(key.default)
    if isinstance(key.default, list | dict):
        return type(key.default)(key.default)
    if key.kind == "table":
        return None
    return key.default


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _type(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
