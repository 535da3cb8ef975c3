"""Value objects without @dataclass's import cost.

@dataclass compiles up to six generated methods per class when its module is imported: for the
eighteen classes a `mailtix run` imports that was ~15 ms of every cron run, more than the run's
IMAP round trips. Record reads the fields from the class annotations once and shares one
generic implementation of each method. Records are immutable unless declared
`class X(Record, mutable=True)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar


class Factory:
    """A default made anew for each instance (dataclasses' default_factory)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class Record:
    """Fields are the class's annotated names, in order; a class attribute is the default."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    _mutable: ClassVar[bool] = False

    def __init_subclass__(cls, mutable: bool = False) -> None:
        cls._mutable = mutable
        if mutable:
            cls.__hash__ = None  # type: ignore[assignment]  # equal by value, so not hashable
        names = [n for n, kind in cls.__dict__.get("__annotations__", {}).items()
                 if not str(kind).startswith("ClassVar")]
        cls._fields = tuple(names)
        cls._defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        required_after_default = [n for i, n in enumerate(names) if n not in cls._defaults
                                  and any(m in cls._defaults for m in names[:i])]
        if required_after_default:
            raise TypeError(f"{cls.__name__}: field {required_after_default[0]} without a "
                            "default follows one with a default")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if len(args) > len(cls._fields):
            raise TypeError(f"{cls.__name__} takes {len(cls._fields)} arguments")
        values = dict(zip(cls._fields, args, strict=False))
        for name, value in kwargs.items():
            if name not in cls._fields:
                raise TypeError(f"{cls.__name__} has no field {name!r}")
            if name in values:
                raise TypeError(f"{cls.__name__} got {name!r} twice")
            values[name] = value
        for name in cls._fields:
            if name not in values:
                if name not in cls._defaults:
                    raise TypeError(f"{cls.__name__} needs {name!r}")
                default = cls._defaults[name]
                values[name] = default.make() if isinstance(default, Factory) else default
        object.__setattr__(self, "__dict__", values)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._mutable and name in self._fields:
            self.__dict__[name] = value
            return
        raise AttributeError(f"{type(self).__name__}: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (tried to delete {name!r})")

    def _values(self) -> tuple:
        return tuple(self.__dict__[n] for n in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={self.__dict__[n]!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"


def as_dict(value: Any) -> Any:
    """Records as plain dicts, recursively (dataclasses.asdict)."""
    if isinstance(value, Record):
        return {n: as_dict(v) for n, v in zip(value._fields, value._values(), strict=True)}
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(as_dict(v) for v in value)
    return value


def replace(record: Any, **changes: Any) -> Any:
    """A copy with some fields changed (dataclasses.replace)."""
    values = dict(zip(record._fields, record._values(), strict=True))
    values.update(changes)
    return type(record)(**values)
