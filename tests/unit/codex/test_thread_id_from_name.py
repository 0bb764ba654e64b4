"""The id read from a rollout's file name is the canonical form `uuid.UUID` gives."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.codex.home import thread_id_from_name


@given(st.uuids(), st.booleans(), st.sampled_from([".jsonl", ".jsonl.zst"]))
def test_id_is_the_canonical_uuid(value: uuid.UUID, upper: bool, suffix: str) -> None:
    text = str(value).upper() if upper else str(value)
    assert thread_id_from_name(f"rollout-2026-11-25T00-00-00-{text}{suffix}") == str(value)


@given(st.text(max_size=60))
def test_anything_else_is_none_or_a_uuid(name: str) -> None:
    found = thread_id_from_name(name)
    assert found is None or str(uuid.UUID(found)) == found
