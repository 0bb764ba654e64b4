"""A long turn's text is grown in place from its pieces: the text the pieces make (trailing
CR/LF dropped), never held twice while it is built."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.codex.longline import TurnText

MB = 1_000_000


@given(st.lists(st.sampled_from(["a", "\n", "\r\n", "é", "😀", " ", "\r", "b\n\n"]), max_size=12))
def test_the_text_is_the_pieces_without_trailing_newlines(pieces: list[str]) -> None:
    kept, keyed_only = TurnText(keep=True), TurnText(keep=False)
    for piece in pieces:
        kept.add(piece)
        keyed_only.add(piece)
    assert kept.text() == "".join(pieces).rstrip("\r\n")
    assert keyed_only.text() is None and keyed_only.key == kept.key


def test_a_long_text_is_never_held_twice() -> None:
    piece = "abcdefghij" * 25_000  # 250 kB
    tracemalloc.start()
    try:
        collected = TurnText(keep=True)
        for n in range(80):  # 20 MB
            collected.add(piece + str(n % 10))
        text = collected.text()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text is not None and len(text) == 80 * (len(piece) + 1)
    assert peak < len(text) + 2 * MB, f"peak {peak / MB:.1f} MB for a {len(text) / MB:.1f} MB text"
