from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.chunk import OVERVIEW, chunk_blocks, count_tokens
from ingest.parse import Block, BlockKind

H = BlockKind.heading
T = BlockKind.text


def test_section_paths_follow_headings() -> None:
    blocks = [
        Block(H, "Billing hours", 0),
        Block(T, "Intro text."),
        Block(H, "Phone", 1),
        Block(T, "Call us."),
        Block(H, "Saturday", 2),
        Block(T, "Closed."),
        Block(H, "Fax", 1),
        Block(T, "No fax."),
    ]
    chunks = chunk_blocks(blocks, "Billing hours")
    assert [(c.section, c.text) for c in chunks] == [
        (OVERVIEW, "Intro text."),
        ("Phone", "Call us."),
        ("Phone > Saturday", "Closed."),
        ("Fax", "No fax."),
    ]


def test_table_stays_whole_when_it_fits() -> None:
    table = "\n".join(f"Location: Site {i}; Hours: 8-5" for i in range(5))
    chunks = chunk_blocks(
        [Block(H, "Hours", 1), Block(T, "Intro."), Block(BlockKind.table, table)], "X"
    )
    assert any(c.text.endswith(table) for c in chunks)


def test_long_section_is_split_with_one_sentence_overlap() -> None:
    sentences = [f"Sentence number {i} explains one more rule for visitors." for i in range(60)]
    chunks = chunk_blocks([Block(H, "Rules", 1), Block(T, " ".join(sentences))], "X", max_tokens=80)
    assert len(chunks) > 2
    for before, after in pairwise(chunks):
        assert after.text.split(". ")[0].rstrip(".") in before.text  # overlap only at the split
    assert all(c.section == "Rules" for c in chunks)


words = st.text(alphabet="abcdefghij", min_size=1, max_size=12)
sentence = st.lists(words, min_size=1, max_size=30).map(lambda ws: " ".join(ws).capitalize() + ".")
paragraph = st.lists(sentence, min_size=1, max_size=25).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), paragraph), min_size=1, max_size=12), st.integers(40, 300))
def test_chunks_respect_budget_and_lose_no_words(
    items: list[tuple[bool, str]], budget: int
) -> None:
    blocks = [
        Block(H, f"Section {i}", 1) if is_heading else Block(T, text)
        for i, (is_heading, text) in enumerate(items)
    ]
    chunks = chunk_blocks(blocks, "Title", max_tokens=budget)
    for chunk in chunks:
        assert count_tokens(chunk.text) <= budget
    body_words = {w.strip(".").lower() for b in blocks if b.kind == T for w in b.text.split()}
    chunk_words = {w.strip(".").lower() for c in chunks for w in c.text.split()}
    assert body_words <= chunk_words
