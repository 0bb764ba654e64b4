"""`codex_indexd.records` behaves as `dataclasses` does for every feature the project uses.

Each class body is decorated twice, once by `dataclasses.dataclass` and once by `record`, with
the same options; the two are then driven with the same values and must agree.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codex_indexd import records

OPTIONS = [
    {},
    {"frozen": True},
    {"slots": True},
    {"frozen": True, "slots": True},
    {"slots": True, "eq": False},
    {"frozen": True, "eq": False},
]


def _pair(options: dict[str, bool], factory: bool) -> tuple[type, type]:
    """Return the same class made by dataclasses and by records."""

    fresh = tuple if options.get("frozen") else list  # a frozen record's hash needs a tuple

    def body(field: Any) -> dict[str, Any]:
        namespace: dict[str, Any] = {
            "__annotations__": {"a": "int", "b": "str", "c": "int", "d": "list[int]"},
            "__doc__": "A test class.",
            "c": 7,
            "d": field(default_factory=fresh) if factory else field(default=None),
            "e_method": lambda self: self.a + self.c,
        }
        namespace["__annotations__"]["hidden"] = "object"
        namespace["hidden"] = field(default=None, repr=False, compare=False)
        return namespace

    made = []
    for maker, field in (
        (dataclasses.dataclass, dataclasses.field),
        (records.record, records.field),
    ):
        # A module-level name of its own, so that pickle can find each class.
        name = f"Thing_{maker.__name__}_{'_'.join(options) or 'plain'}_{factory}"
        namespace = body(field) | {"__module__": __name__, "__qualname__": name}
        cls: Any = maker(**options)(type(name, (), namespace))
        globals()[name] = cls
        made.append(cls)
    return made[0], made[1]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@given(values=st.tuples(st.integers(), st.text(max_size=5), st.integers(), st.integers()))
def test_a_record_behaves_as_the_dataclass_of_the_same_body(
    options: dict[str, bool], values: tuple[int, str, int, int]
) -> None:
    a, b, c, other_a = values
    hidden = c + 1
    ours_and_theirs = _pair(options, factory=True)
    seen = []
    cls: Any
    for cls in ours_and_theirs:
        one, same, other = cls(a, b, c, hidden=hidden), cls(a, b, c), cls(other_a, b, c)
        facts: dict[str, Any] = {
            "repr": repr(one).split("(", 1)[1],
            "eq": (one == same, one == other, one != same, one == "text"),
            "defaults": (cls(a, b).c, cls(a, b).d, cls(a, b).d is not cls(a, b).d),
            "method": one.e_method(),
            "has_dict": hasattr(one, "__dict__"),
            "hashable": cls.__hash__ is not None,
            "match_args": cls.__match_args__,
            "pickled_equal": pickle.loads(pickle.dumps(one)) == one,
            "copied_equal": copy.copy(one) == one and copy.deepcopy(one) == one,
            "doc": cls.__doc__,
        }
        if cls.__hash__ is not None:
            facts["hash_equal"] = hash(one) == hash(same)
        replace = dataclasses.replace if cls is ours_and_theirs[0] else records.replace
        changed = replace(one, a=other_a)
        facts["replaced"] = (changed == other, changed.hidden, one.a)
        try:
            one.a = other_a
            facts["assigned"] = one.a
        except AttributeError:
            facts["assigned"] = "refused"
        seen.append(facts)
    assert seen[0] == seen[1]


def test_an_instance_of_a_frozen_record_refuses_assignment_and_deletion() -> None:
    _, thing = _pair({"frozen": True, "slots": True}, factory=False)
    one = thing(1, "x")
    with pytest.raises(records.FrozenRecordError):
        one.a = 2
    with pytest.raises(AttributeError):
        del one.b
    assert (one.a, one.b, one.d) == (1, "x", None)


@records.record(frozen=True, slots=True)
class Keyed:
    """A frozen record whose `__post_init__` fills a field, like a turn's text key."""

    text: str
    key: int = -1

    def __post_init__(self) -> None:
        if self.key == -1:
            object.__setattr__(self, "key", len(self.text))


def test_post_init_runs_after_the_fields_are_set_and_may_fill_a_frozen_field() -> None:
    assert Keyed("abc").key == 3 and Keyed("abc", 9).key == 9
    assert pickle.loads(pickle.dumps(Keyed("abcd"))) == Keyed("abcd")


def test_a_field_without_a_default_after_one_with_a_default_is_refused() -> None:
    class Bad:
        __annotations__ = {"a": "int", "b": "int"}
        a = 1

    with pytest.raises(TypeError, match="follows a field with a default"):
        records.record(Bad)


def test_replace_refuses_an_unknown_field_and_fields_lists_them_in_order() -> None:
    _, thing = _pair({}, factory=True)
    with pytest.raises(TypeError, match="no field 'zzz'"):
        records.replace(thing(1, "x"), zzz=1)
    assert [f.name for f in records.fields(thing)] == ["a", "b", "c", "d", "hidden"]


def test_a_subclass_record_takes_the_fields_of_its_base_first() -> None:
    @records.record
    class Base:
        a: int

    @records.record
    class Child(Base):
        b: str = "b"

    assert (
        repr(Child(1))
        == "test_a_subclass_record_takes_the_fields_of_its_base_first.<locals>.Child(a=1, b='b')"
    )
    assert Child(1) == Child(1, "b") and Child(1) != Base(1)


def test_a_record_whose_fields_are_all_left_out_of_comparisons_compares_equal_by_class() -> None:
    @records.record(frozen=True)
    class Opaque:
        secret: str = records.field(default="", compare=False)

    assert Opaque("a") == Opaque("b") and hash(Opaque("a")) == hash(Opaque("b"))
