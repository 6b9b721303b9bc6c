import functools
import shutil
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from governance.errors import InvalidInput
from ingest.chunk import (
    OVERVIEW,
    ChunkBudget,
    _by_words,
    chunk_blocks,
    count_tokens,
    default_budget,
    embed_text,
)
from ingest.parse import Block, BlockKind
from retrieval.embed import DEFAULT_MODEL, resolve_model

H = BlockKind.heading
T = BlockKind.text


@functools.cache
def exact_word_pieces(text: str) -> int:
    """The bundled model's tokenizer run on the whole text: what the encoder reads."""
    tokenizer = Tokenizer.from_file(str(resolve_model(DEFAULT_MODEL) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


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
    chunks = chunk_blocks(
        [Block(H, "Rules", 1), Block(T, " ".join(sentences))], "X", ChunkBudget(80)
    )
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
    chunks = chunk_blocks(blocks, "Title", ChunkBudget(budget))
    for chunk in chunks:
        assert count_tokens(chunk.text) == chunk.token_count <= budget
    body_words = {w.strip(".").lower() for b in blocks if b.kind == T for w in b.text.split()}
    chunk_words = {w.strip(".").lower() for c in chunks for w in c.text.split()}
    assert body_words <= chunk_words


medical = st.sampled_from(
    [
        "hypertrophic",
        "cardiomyopathy",
        "echocardiogram",
        "pneumonoultramicroscopic",
        "of",
        "the",
        "anticoagulation",
        "CYP2C19",
        "(mg/dL)",
        "x-ray",
        "immunoglobulin",
        "care",
    ]
)
wp_sentence = st.lists(medical, min_size=1, max_size=60).map(lambda ws: " ".join(ws) + ".")
wp_paragraph = st.lists(wp_sentence, min_size=1, max_size=20).map(" ".join)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([H, T, T, BlockKind.list_item]), wp_paragraph), max_size=10),
    st.integers(32, 512),
    st.sampled_from(["Cardiomyopathy", "A title that runs long " * 6]),
)
def test_the_encoder_reads_every_chunk_to_its_end(
    items: list[tuple[BlockKind, str]], wanted: int, title: str
) -> None:
    """Counted in the model's own word pieces, title and section included, no chunk passes
    the 256 the encoder reads (less [CLS] and [SEP]), and no word is lost."""
    budget = ChunkBudget.for_model(max_tokens=wanted)
    assert budget.limit == 254
    blocks = [Block(kind, text[:80] if kind == H else text, 1) for kind, text in items]
    chunks = chunk_blocks(blocks, title, budget)
    for chunk in chunks:
        assert chunk.token_count == exact_word_pieces(chunk.text) <= wanted
        assert exact_word_pieces(embed_text(title, chunk.section, chunk.text)) <= 254
    body = {w for b in blocks if b.kind != H for w in b.text.split()}
    assert body <= {w for c in chunks for w in c.text.replace("- ", " ").split()}


def test_word_pieces_are_what_the_model_counts() -> None:
    count = default_budget().count
    assert count("cardiomyopathy") == 4  # card ##iom ##yo ##pathy; our regex says 1
    assert count_tokens("cardiomyopathy") == 1
    assert count("Call us at 555-0100.") == 8  # call us at 555 - 01 ##00 .


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(medical, st.text(min_size=1, max_size=12)), max_size=80))
def test_counting_word_by_word_is_exact_for_the_bundled_model(words: list[str]) -> None:
    """Chunking counts from a cache of words' counts; for WordPiece that is the count
    of the whole text, whatever the separators and characters."""
    text = " ".join(words)
    assert default_budget().count(text) == exact_word_pieces(text)


def test_a_tokenizer_that_merges_across_spaces_counts_whole_texts() -> None:
    """A byte-level BPE marks a word by the space in front of it, so a word alone counts
    differently from the same word inside a text: no word cache for it."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["call the billing office about the bill"] * 50, trainer)

    def count(text: str) -> int:
        return len(bpe.encode(text).ids)

    assert _by_words(count) is count
    wordpiece = default_budget().count
    assert _by_words(wordpiece) is not wordpiece  # already word by word: probes pass


def test_a_split_section_fills_its_chunks_across_blocks() -> None:
    """The rest of a split paragraph shares a chunk with the paragraphs after it, and a
    section is cut into about equal parts rather than full chunks and a scrap."""
    long = " ".join(f"Rule {i} says visitors sign in at the front desk." for i in range(30))
    blocks = [
        Block(H, "Visitors", 1),
        Block(T, long),
        Block(T, "Masks are optional."),
        Block(BlockKind.list_item, "Children need an adult."),
    ]
    budget = ChunkBudget(150)
    chunks = chunk_blocks(blocks, "Visitor policy", budget)
    total = sum(count_tokens(b.text) for b in blocks[1:])
    assert len(chunks) == -(-total // 150)  # as few as the budget allows
    assert "Masks are optional.\n- Children need an adult." in chunks[-1].text
    assert chunks[-1].text.startswith("Rule ")  # filled, not a chunk of two short lines
    sizes = [c.token_count for c in chunks]
    assert max(sizes) - min(sizes) < 150 // 2


def test_tables_that_fit_are_never_cut_and_get_no_overlap() -> None:
    rows = [f"Site: Clinic {i}; Hours: 8-5; Phone: 555-01{i:02d}" for i in range(8)]
    table = "\n".join(rows)
    intro = " ".join(f"Intro sentence {i} about hours." for i in range(20))
    blocks = [Block(H, "Hours", 1), Block(T, intro), Block(BlockKind.table, table)]
    budget = ChunkBudget(150)
    assert count_tokens(table) <= 150 < count_tokens(intro) + count_tokens(table)
    chunks = chunk_blocks(blocks, "Clinic hours", budget)
    assert sum(table in c.text for c in chunks) == 1
    big = chunk_blocks([Block(BlockKind.table, "\n".join(rows * 4))], "X", budget)
    assert len(big) > 1 and all(c.token_count <= 150 for c in big)
    assert sum(len(c.text.splitlines()) for c in big) == 32  # rows whole, none repeated


def test_a_budget_below_the_floor_is_refused() -> None:
    with pytest.raises(InvalidInput, match="max_tokens=8"):
        ChunkBudget(8)


def test_a_model_without_a_fast_tokenizer_counts_with_its_slow_one(tmp_path: Path) -> None:
    bundled = resolve_model(DEFAULT_MODEL)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        shutil.copy(bundled / name, tmp_path / name)
    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    slow = ChunkBudget.for_model(tmp_path)
    fast = default_budget()
    text = "Hypertrophic cardiomyopathy: call 555-0100 (ext. 12) before 8 a.m."
    assert slow.count(text) == fast.count(text) > count_tokens(text)
    assert slow.limit == 126


def test_a_model_directory_with_no_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=f"{tmp_path}: no tokenizer"):
        ChunkBudget.for_model(tmp_path)
