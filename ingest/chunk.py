"""Blocks -> chunks that follow the document's structure.

A chunk never crosses a section boundary and keeps its section path. Sections
that fit the token budget stay whole; longer ones are packed block by block,
tables stay whole where they fit, and only a block split mid-way gets overlap
(its last sentence repeated at the start of the next chunk).
"""

import hashlib
import re
from collections.abc import Iterable, Sequence

from governance.models import ChunkDraft
from ingest.parse import Block, BlockKind

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
OVERVIEW = "Overview"


def count_tokens(text: str) -> int:
    """Roughly the model's word pieces: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def chunk_hash(section: str, text: str) -> str:
    return hashlib.sha256(f"{section}\n{text}".encode()).hexdigest()


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


def _split_long(text: str, budget: int) -> list[str]:
    """Split one oversized block on sentences, repeating one sentence as overlap."""
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    pieces: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        while count_tokens(sentence) > budget:  # a run-on "sentence": cut on words
            words = sentence.split()
            head, sentence = " ".join(words[: budget // 2]), " ".join(words[budget // 2 :])
            if current:
                pieces.append(" ".join(current))
            pieces.append(head)
            current = []
        if current and count_tokens(" ".join([*current, sentence])) > budget:
            pieces.append(" ".join(current))
            current = [current[-1]] if count_tokens(current[-1]) < budget // 3 else []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces


def chunk_blocks(blocks: Sequence[Block], title: str, *, max_tokens: int = 200) -> list[ChunkDraft]:
    drafts: list[ChunkDraft] = []

    def emit(section: str, lines: list[str]) -> None:
        text = "\n".join(lines).strip()
        if text:
            drafts.append(ChunkDraft(section, text, count_tokens(text), chunk_hash(section, text)))

    for section, members in _sections(blocks, title):
        lines: list[str] = []
        used = 0
        for block in members:
            rendered = _render(block)
            size = count_tokens(rendered)
            if size > max_tokens:
                emit(section, lines)
                lines, used = [], 0
                if block.kind == BlockKind.table:
                    rows = rendered.splitlines()
                    for row in rows:
                        if used + count_tokens(row) > max_tokens and lines:
                            emit(section, lines)
                            lines, used = [], 0
                        lines.append(row)
                        used += count_tokens(row)
                    emit(section, lines)
                    lines, used = [], 0
                else:
                    for piece in _split_long(rendered, max_tokens):
                        emit(section, [piece])
                continue
            if used + size > max_tokens and lines:
                emit(section, lines)
                lines, used = [], 0
            lines.append(rendered)
            used += size
        emit(section, lines)
    return drafts
