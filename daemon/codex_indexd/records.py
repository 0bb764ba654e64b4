"""`record`: the small subset of `dataclasses` the project uses, at a fraction of its import cost.

`dataclasses` generates several methods per class with `exec` and imports `inspect` (with
`ast`, `dis`, `tokenize`); over the three dozen classes a `repair` loads, that was about half of
its start-up. A record generates only its `__init__`; `__repr__`, `__eq__`, `__hash__` and, for
frozen records, `__setattr__`, `__delattr__` and the pickle state are shared functions over the
class's field tuple.

Supported, with the meaning `dataclasses` gives them: `frozen`, `slots`, `eq`, field defaults,
`field(default=..., default_factory=..., repr=..., compare=...)`, `__post_init__`, fields of a
base record, `replace`, `fields`. Not supported: `ClassVar`/`InitVar`, `kw_only`, `order`.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_MISSING: Any = object()
_FIELDS = "__record_fields__"


class FrozenRecordError(AttributeError):
    """Raised on an assignment to (or deletion of) a field of a frozen record."""


class Field:
    """How one field is initialised, shown and compared (built by `field`)."""

    __slots__ = ("compare", "default", "default_factory", "name", "repr")

    def __init__(
        self,
        default: Any = _MISSING,
        default_factory: Callable[[], Any] | None = None,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        if default is not _MISSING and default_factory is not None:
            raise ValueError("a field takes a default or a default_factory, not both")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare

    @property
    def required(self) -> bool:
        """True when the field has neither a default nor a factory."""
        return self.default is _MISSING and self.default_factory is None


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """Return a field specification for a record's class body (typed as its value)."""
    return Field(default, default_factory, repr, compare)


@overload
def record(cls: type[_T], /) -> type[_T]: ...
@overload
def record(
    *, frozen: bool = False, slots: bool = False, eq: bool = True
) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(field_specifiers=(field, Field))
def record(
    cls: type[_T] | None = None,
    /,
    *,
    frozen: bool = False,
    slots: bool = False,
    eq: bool = True,
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Return `cls` (or, with `slots`, a copy of it with `__slots__`) made a record.

    Used bare or with keywords, like `dataclasses.dataclass`. Raises TypeError when a field
    without a default follows one with a default.
    """

    def wrap(klass: type[_T]) -> type[_T]:
        return _make_record(klass, frozen=frozen, slots=slots, eq=eq)

    return wrap if cls is None else wrap(cls)


def fields(obj: object) -> tuple[Field, ...]:
    """Return the fields of a record class or instance, in declaration order."""
    found: tuple[Field, ...] = getattr(obj, _FIELDS)
    return found


def replace(obj: _T, /, **changes: Any) -> _T:
    """Return a new record like `obj` with `changes` applied (through `__init__`)."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


def _own_fields(cls: type) -> list[Field]:
    found: list[Field] = []
    # The class's own annotations: `inspect.get_annotations` would import what this avoids.
    for name in cls.__dict__.get("__annotations__", {}):  # noqa: RUF063
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        found.append(spec)
    return found


def _make_record(cls: type[_T], *, frozen: bool, slots: bool, eq: bool) -> type[_T]:
    inherited: tuple[Field, ...] = getattr(cls, _FIELDS, ())
    own = _own_fields(cls)
    own_names = {f.name for f in own}
    specs = tuple(f for f in inherited if f.name not in own_names) + tuple(own)
    seen_default = False
    for spec in specs:
        if spec.required and seen_default:
            raise TypeError(f"{cls.__name__}: field {spec.name!r} follows a field with a default")
        seen_default = seen_default or not spec.required
    if slots:
        body = dict(cls.__dict__)
        for name in (*own_names, "__dict__", "__weakref__"):
            body.pop(name, None)
        body["__slots__"] = tuple(f.name for f in own)
        metaclass: Any = type(cls)
        remade: Any = metaclass(cls.__name__, cls.__bases__, body)
        cls = remade
    else:
        for spec in own:  # class attributes hold plain defaults, as with dataclasses
            if spec.default is _MISSING:
                if spec.name in cls.__dict__:
                    delattr(cls, spec.name)
            else:
                setattr(cls, spec.name, spec.default)
    setattr(cls, _FIELDS, specs)
    setattr(cls, "__match_args__", tuple(f.name for f in specs))  # noqa: B010 - a class attribute mypy cannot see
    _set(cls, "__init__", _first_init(cls, specs, frozen))
    _set(cls, "__repr__", _repr_function(specs))
    compared_names = [f.name for f in specs if f.compare]
    compared = attrgetter(*compared_names) if compared_names else _no_values
    if eq:
        _set(cls, "__eq__", _eq_function(compared))
    if frozen and eq:
        _set(cls, "__hash__", lambda self: hash((compared(self),)))
    if frozen:
        _set(cls, "__setattr__", _refuse_assignment)
        _set(cls, "__delattr__", _refuse_deletion)
        names = tuple(f.name for f in specs)
        _set(cls, "__getstate__", lambda self: tuple(getattr(self, n) for n in names))
        _set(cls, "__setstate__", lambda self, state: _restore(self, names, state))
    if eq and not frozen and "__hash__" not in cls.__dict__:
        cls.__hash__ = None  # type: ignore[assignment]  # a mutable record with __eq__ is unhashable
    return cls


def _set(cls: type, name: str, function: Callable[..., Any]) -> None:
    """Give `cls` the method unless its body defines one (as `dataclasses` does)."""
    if cls.__dict__.get(name) is not None:
        return
    function.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, function)


def _no_values(_obj: object) -> tuple[()]:
    return ()


def _first_init(cls: type, specs: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """Return an `__init__` that generates the real one on the first instance and puts it
    in its place: a class a run never instantiates never pays for the generated code."""

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        init = _init_function(cls, specs, frozen)
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    return __init__


def _init_function(cls: type, specs: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """Return a generated `__init__` taking the fields in order (defaults and factories)."""
    params: list[str] = []
    lines: list[str] = []
    env: dict[str, Any] = {"_object_setattr": object.__setattr__, "_MISSING": _MISSING}
    for i, spec in enumerate(specs):
        if spec.default_factory is not None:
            env[f"_factory{i}"] = spec.default_factory
            params.append(f"{spec.name}=_MISSING")
            value = f"_factory{i}() if {spec.name} is _MISSING else {spec.name}"
        elif spec.default is not _MISSING:
            env[f"_default{i}"] = spec.default
            params.append(f"{spec.name}=_default{i}")
            value = spec.name
        else:
            params.append(spec.name)
            value = spec.name
        if frozen:
            lines.append(f"    _object_setattr(self, {spec.name!r}, {value})")
        else:
            lines.append(f"    self.{spec.name} = {value}")
    if hasattr(cls, "__post_init__"):
        lines.append("    self.__post_init__()")
    signature = ", ".join(["self", *params])
    source = f"def __init__({signature}):\n" + ("\n".join(lines) or "    pass")
    namespace: dict[str, Any] = {}
    exec(source, env, namespace)
    init: Callable[..., None] = namespace["__init__"]
    return init


def _repr_function(specs: tuple[Field, ...]) -> Callable[[object], str]:
    shown = tuple(f.name for f in specs if f.repr)

    def __repr__(self: object) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({inner})"

    return __repr__


def _eq_function(compared: Callable[[object], object]) -> Callable[[object, object], bool]:
    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(compared(self) == compared(other))

    return __eq__


def _refuse_assignment(self: object, name: str, value: object) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r}")


def _refuse_deletion(self: object, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r}")


def _restore(obj: object, names: tuple[str, ...], state: tuple[object, ...]) -> None:
    for name, value in zip(names, state, strict=True):
        object.__setattr__(obj, name, value)
