"""Blocks -> chunks that follow the document's structure.

A chunk never crosses a section boundary and keeps its section path. The budget is
counted the way the encoder counts (its own word pieces, from the model directory's
tokenizer) and leaves room for the title and section the encoder reads in front of the
text, so no chunk has an end the encoder never sees. Sections that fit stay whole.
Longer ones are cut into units (a block, or a sentence of a block too long to keep
whole; a table that fits is one unit, one too long for a chunk is cut on rows) and the
units are packed into chunks of about equal size, filled across block boundaries. Only
where a cut falls inside a block does the next chunk repeat that block's last sentence
as overlap.
"""

import functools
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from governance.errors import InvalidInput
from governance.models import ChunkDraft
from ingest.parse import Block, BlockKind
from retrieval.embed import DEFAULT_MODEL, resolve_model

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
OVERVIEW = "Overview"
DEFAULT_MAX_TOKENS = 192  # chosen on MedQuAD dev (evals/README.md, "Chunk size")
MIN_TOKENS = 16  # a chunk budget never falls below this, however long the title is


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a model-free stand-in for word pieces."""
    return len(_TOKEN.findall(text))


def chunk_hash(section: str, text: str) -> str:
    return hashlib.sha256(f"{section}\n{text}".encode()).hexdigest()


def embed_text(title: str, section: str, text: str) -> str:
    """What the encoders see: the passage with its title and section for context."""
    return f"{title}. {section}.\n{text}" if section else f"{title}.\n{text}"


@dataclass(frozen=True)
class ChunkBudget:
    """How much text one chunk may hold.

    `max_tokens` is the wanted size; `limit` is how many tokens the encoder reads (its
    maximum sequence length less its special tokens), which caps each chunk together
    with the title and section prefix the encoder sees in front of it. `count` counts
    as the encoder does when built by `for_model`.
    """

    max_tokens: int = DEFAULT_MAX_TOKENS
    count: Callable[[str], int] = count_tokens
    limit: int | None = None
    model: str | None = field(default=None, compare=False, repr=False)  # set by for_model

    def __post_init__(self) -> None:
        if self.max_tokens < MIN_TOKENS:
            raise InvalidInput(f"chunk budget: max_tokens={self.max_tokens} is below {MIN_TOKENS}")

    @classmethod
    def for_model(
        cls, model: str | Path = DEFAULT_MODEL, max_tokens: int = DEFAULT_MAX_TOKENS
    ) -> Self:
        count, limit = _word_pieces(resolve_model(str(model)))
        return cls(max_tokens=max_tokens, count=count, limit=limit, model=str(model))

    def __reduce__(self) -> tuple[Any, ...]:
        """A model's budget travels to a parse worker by name and is rebuilt there: its
        counter holds a tokenizer, which does not pickle."""
        if self.model is not None:
            return (type(self).for_model, (self.model, self.max_tokens))
        return (type(self), (self.max_tokens, self.count, self.limit))

    def for_section(self, title: str, section: str) -> int:
        if self.limit is None:
            return self.max_tokens
        room = self.limit - self.count(embed_text(title, section, ""))
        return max(MIN_TOKENS, min(self.max_tokens, room))


@functools.lru_cache(maxsize=4)
def _word_pieces(model_dir: Path) -> tuple[Callable[[str], int], int]:
    """The model's own tokenizer as a counter, and how many word pieces it reads."""
    limit = 512
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        limit = int(json.loads(config.read_text()).get("max_seq_length") or limit)
    if (model_dir / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        fast.no_truncation()
        fast.no_padding()

        def count(text: str) -> int:
            return len(fast.encode(text, add_special_tokens=False).ids)

        return _by_words(count), limit - len(fast.encode("", add_special_tokens=True).ids)
    try:  # a model directory with only a slow tokenizer (vocab.txt, ...)
        from transformers import AutoTokenizer

        slow = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"{model_dir}: no tokenizer to count chunk word pieces with ({exc})"
        ) from None

    def count_slow(text: str) -> int:
        return len(slow.tokenize(text))

    return _by_words(count_slow), limit - slow.num_special_tokens_to_add()


# Text on which a tokenizer that treats whitespace as a hard boundary counts the same
# whole as word by word: punctuation, digits, accents, CJK, a URL, tabs and newlines.
_PROBES = (
    "Take 2 tablets (500 mg) twice-daily, e.g. at 8:00 a.m.; call 555-0100 ext. 12.",
    "Naïve café patients\tsaw Dr. O'Brien — “quoted” text, 日本語 and https://x.org/a?b=1",
    "Hypertrophic cardiomyopathy\n\n- CYP2C19 (mg/dL) x-ray\r\nend",
)


# Words between the whitespace every such tokenizer splits on. Not str.split(): that
# also splits on control characters (form feed, ...) which BERT deletes, joining words.
_WORD = re.compile(r"[^ \t\n\r]+")


def _by_words(count: Callable[[str], int]) -> Callable[[str], int]:
    """`count`, from a cache of each whitespace-separated word's count where that is exact.

    Chunking counts every word several times (block, sentence, piece, chunk), and one
    tokenizer call per text costs more than the word pieces themselves: for MedQuAD this
    was half of parsing and chunking. A tokenizer that never merges across whitespace
    (BERT's WordPiece does not) counts a text as the sum of its words. One that does (a
    byte-level BPE marks a word by the space in front of it) fails the probes and keeps
    counting whole texts.
    """
    if any(count(p) != sum(count(w) for w in _WORD.findall(p)) for p in _PROBES):
        return count
    word = functools.lru_cache(maxsize=1 << 18)(count)

    def by_words(text: str) -> int:
        return sum(map(word, _WORD.findall(text)))

    return by_words


@dataclass(frozen=True)
class _Unit:
    text: str
    tokens: int
    block: int  # which block of the section it came from
    piece: bool  # part of a block cut on sentences (may be repeated as overlap)


def _render(block: Block) -> str:
    return f"- {block.text}" if block.kind == BlockKind.list_item else block.text


def _sections(blocks: Sequence[Block], title: str) -> Iterable[tuple[str, list[Block]]]:
    """Group blocks under their heading path; the article title is not part of the path."""
    stack: list[tuple[int, str]] = []
    current: list[Block] = []
    path = OVERVIEW
    for block in blocks:
        if block.kind == BlockKind.heading:
            if current:
                yield path, current
                current = []
            while stack and stack[-1][0] >= block.depth:
                stack.pop()
            stack.append((block.depth, block.text))
            names = [name for _, name in stack if name.strip().lower() != title.strip().lower()]
            path = " > ".join(names) or OVERVIEW
        else:
            current.append(block)
    if current:
        yield path, current


def _cut_words(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """A run-on sentence cut on words into pieces within the budget."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        size = count(word)
        if size > budget:  # one "word" longer than a chunk (a URL, a base64 run): on characters
            pieces.extend(word[i : i + budget] for i in range(0, len(word), budget))
            continue
        if current and used + size > budget:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += size
    if current:
        pieces.append(" ".join(current))
    return pieces


def _units(members: Sequence[Block], budget: int, count: Callable[[str], int]) -> list[_Unit]:
    units: list[_Unit] = []
    for index, block in enumerate(members):
        rendered = _render(block)
        size = count(rendered)
        if size <= budget:
            units.append(_Unit(rendered, size, index, False))
        elif block.kind == BlockKind.table:  # rows stay whole; no overlap between table parts
            for row in rendered.splitlines():
                for part in _cut_words(row, budget, count) if count(row) > budget else [row]:
                    units.append(_Unit(part, count(part), index, False))
        else:
            for sentence in _SENTENCE.split(rendered):
                if not sentence.strip():
                    continue
                for part in _cut_words(sentence, budget, count):
                    units.append(_Unit(part, count(part), index, True))
    return units


def _join(units: Sequence[_Unit]) -> str:
    text = units[0].text
    for before, unit in itertools.pairwise(units):
        same_block = before.block == unit.block and before.piece and unit.piece
        text += (" " if same_block else "\n") + unit.text
    return text.strip()


def _pack(units: Sequence[_Unit], budget: int) -> list[list[_Unit]]:
    """Fill chunks to about an equal share of the section, never past the budget."""
    total = sum(u.tokens for u in units)
    if total <= budget:
        return [list(units)]
    share = math.ceil(total / math.ceil(total / budget))
    target = min(budget, share + budget // 10)
    chunks: list[list[_Unit]] = []
    current: list[_Unit] = []
    used = 0
    for unit in units:
        if current and used + unit.tokens > target:
            chunks.append(current)
            last = current[-1]
            overlap = (
                last.piece
                and unit.piece
                and last.block == unit.block
                and last.tokens < budget // 3
                and last.tokens + unit.tokens <= budget
            )
            current, used = ([last], last.tokens) if overlap else ([], 0)
        current.append(unit)
        used += unit.tokens
    if current:
        chunks.append(current)
    return chunks


def chunk_blocks(
    blocks: Sequence[Block], title: str, budget: ChunkBudget | None = None
) -> list[ChunkDraft]:
    budget = budget or default_budget()
    drafts: list[ChunkDraft] = []
    for section, members in _sections(blocks, title):
        room = budget.for_section(title, section)
        units = _units(members, room, budget.count)
        if not units:
            continue
        for packed in _pack(units, room):
            text = _join(packed)
            if text:
                drafts.append(
                    ChunkDraft(section, text, budget.count(text), chunk_hash(section, text))
                )
    return drafts


@functools.lru_cache(maxsize=1)
def default_budget() -> ChunkBudget:
    """The bundled model's word pieces at the default size (what `canon ingest` uses unless
    the settings name another model or size)."""
    return ChunkBudget.for_model()
