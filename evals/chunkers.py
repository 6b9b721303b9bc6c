"""Chunkers side by side on MedQuAD dev: ours (`ingest.chunk`) against llama-index node parsers.

Every chunker reads the same written Markdown files of the bench (`<home>/corpus`). Each
gets a Qdrant Edge shard of its own (`<home>/chunkers/<slug>`), written by the production
`IndexSync` (the encoder reads `title. section.\\ntext`, BM25 sparse vectors beside it)
against the bench's database, so its embedding cache is shared: a text that two chunkers
(or the bench's own index) produce alike is encoded once. The production `Retriever`
queries each shard in hybrid mode (dense + sparse, RRF in Qdrant) over the bench's
published versions, and the ranked chunks are scored as `baselines` scores the Canon
rows. A chunk maps to the `## ` sections it covers, most-overlapped first; a chunk that
spans several credits each of them (the lenient reading used for the naive LlamaIndex row).
"""

import hashlib
import random
import re
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from evals import medquad
from evals.baselines import Bench, split_questions
from evals.baselines import _scores as passage_scores
from evals.metrics import dedupe
from evals.naive import spanned_sections
from evals.progress import Report, quiet
from governance import service
from governance.models import Audience, Chunk
from ingest.chunk import (
    DEFAULT_MAX_TOKENS,
    OVERVIEW,
    ChunkBudget,
    chunk_blocks,
    chunk_hash,
    count_tokens,
)
from ingest.index import IndexSync, embed_text
from ingest.parse import parse_file, split_front_matter
from retrieval.hybrid import Retriever
from retrieval.store import EdgeStore

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$", re.MULTILINE)
_POINTS = uuid.uuid5(uuid.NAMESPACE_URL, "canon:evals:chunkers")  # deterministic point ids
MAX_FILE_BYTES = 20_000_000


@dataclass(frozen=True)
class Piece:
    """One chunk, whoever cut it."""

    section: str  # the heading path the encoder reads and the payload carries ("" across sections)
    text: str
    sections: tuple[str, ...]  # the headings it covers, most-overlapped first


Chunker = Callable[[Path, Path], list[Piece]]  # (Markdown file, corpus root) -> chunks


def ours(budget: ChunkBudget | None = None) -> Chunker:
    """Canon's structural chunker, as `canon ingest` runs it: parse, then `chunk_blocks`."""

    def chunk(path: Path, root: Path) -> list[Piece]:
        parsed = parse_file(path, root, max_bytes=MAX_FILE_BYTES)
        drafts = chunk_blocks(parsed.blocks, parsed.meta.title, budget)
        return [Piece(d.section, d.text, (d.section,)) for d in drafts]

    return chunk


def _title_and_body(path: Path) -> tuple[str, str]:
    meta, body = split_front_matter(path.read_text("utf-8"), path)
    return str(meta.get("title") or path.stem), body


def markdown_sentences(chunk_size: int, chunk_overlap: int) -> Chunker:
    """llama-index `MarkdownNodeParser` (a node per heading), then `SentenceSplitter`.

    The heading line the Markdown parser leaves at the top of a section goes into the
    section path instead (as ours does), so both chunkers give the encoder the same
    `title. section.\\ntext` shape; a node that is only a heading (the `# Title` line)
    is dropped, as ours drops empty sections.
    """
    from llama_index.core import Document
    from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter

    separator = " > "
    sections = MarkdownNodeParser(header_path_separator=separator)
    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)

    def chunk(path: Path, root: Path) -> list[Piece]:
        title, body = _title_and_body(path)
        pieces: list[Piece] = []
        for node in sections.get_nodes_from_documents([Document(text=body)]):
            text = node.get_content()
            heading = _HEADING.match(text)
            parents = str(node.metadata.get("header_path", "")).strip().strip(">").strip()
            names = [p for p in parents.split(separator) if p] if parents else []
            if heading is not None:
                names.append(heading.group(2).strip())
            names = [n for n in names if n.strip().lower() != title.strip().lower()]
            section = separator.join(names) or OVERVIEW
            for sub in splitter.get_nodes_from_documents([node]):
                piece = sub.get_content()
                if heading is not None and piece.startswith(heading.group(0)):
                    piece = piece[len(heading.group(0)) :]
                if piece.strip():
                    pieces.append(Piece(section, piece.strip(), (section,)))
        return pieces

    return chunk


def whole_article_sentences(chunk_size: int = 1024, chunk_overlap: int = 200) -> Chunker:
    """llama-index `SentenceSplitter` over the whole article (its defaults: 1024/200)."""
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)

    def chunk(path: Path, root: Path) -> list[Piece]:
        _, body = _title_and_body(path)
        pieces: list[Piece] = []
        for node in splitter.get_nodes_from_documents([Document(text=body)]):
            start = node.start_char_idx or 0
            end = node.end_char_idx or start + 1
            pieces.append(Piece("", node.get_content(), spanned_sections(body, start, end)))
        return pieces

    return chunk


def default_chunkers(*sizes: int) -> dict[str, Chunker]:
    """The candidates compared in evals/README.md, by name; the first is the reference.

    Ours at each size in the model's word pieces (default: the production size first, then
    the other compared), ours counting regex tokens as before, and llama-index's parsers.
    """
    sizes = sizes or tuple(dict.fromkeys((DEFAULT_MAX_TOKENS, 256, 192)))
    candidates: dict[str, Chunker] = {
        f"ours ({n} word pieces)": ours(ChunkBudget.for_model(max_tokens=n)) for n in sizes
    }
    return candidates | {
        "ours (200 regex tokens)": ours(ChunkBudget(200)),
        "md+sentence 256/20": markdown_sentences(256, 20),
    }


def chunk_files(
    chunker: Chunker, files: Sequence[tuple[str, Path]], root: Path
) -> tuple[dict[str, list[Piece]], float]:
    """Each article's pieces, and the seconds the chunker took over all files."""
    started = time.perf_counter()
    out = {article_id: chunker(path, root) for article_id, path in files}
    return out, time.perf_counter() - started


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def point_id(name: str, article_id: str, ordinal: int) -> str:
    return str(uuid.uuid5(_POINTS, f"{name}\x1f{article_id}\x1f{ordinal}"))


def passage_keys(article_id: str, piece: Piece) -> tuple[str, ...]:
    return tuple(medquad.passage_key(article_id, s) for s in piece.sections)


@dataclass
class Built:
    name: str
    retriever: Retriever
    store: EdgeStore
    keys: dict[str, tuple[str, ...]]  # point id -> passage keys, most-overlapped first
    stats: dict[str, float]

    def close(self) -> None:
        self.store.close()


def build(bench: Bench, name: str, chunker: Chunker, *, report: Report = quiet) -> Built:
    """Chunk the bench's corpus with `chunker` and index it in a shard of its own
    (reused when the chunks and the encoder are those it was built with)."""
    root = bench.home / "corpus"
    base = bench.stack.retriever
    live = {v.article_id: v for v in base.catalog.live().values()}
    files = [
        (d.article_id, root / d.service_line / f"{d.article_id}.md")
        for d in bench.corpus_docs
        if d.article_id in live
    ]
    pieces, seconds = chunk_files(chunker, files, root)
    chunks: dict[int, list[Chunk]] = {}
    keys: dict[str, tuple[str, ...]] = {}
    texts: list[str] = []
    identity = hashlib.sha256(base.embedder.cache_key.encode())
    for article_id, article_pieces in pieces.items():
        version = live[article_id]
        rows = chunks.setdefault(version.version_id, [])
        for ordinal, piece in enumerate(article_pieces):
            pid = point_id(name, article_id, ordinal)
            keys[pid] = passage_keys(article_id, piece)
            texts.append(embed_text(version.title, piece.section, piece.text))
            identity.update(f"{version.version_id}\x1f{pid}\x1f{texts[-1]}\x1e".encode())
            rows.append(
                Chunk(
                    version_id=version.version_id,
                    ordinal=ordinal,
                    section=piece.section,
                    text=piece.text,
                    token_count=count_tokens(piece.text),
                    content_hash=chunk_hash(piece.section, piece.text),
                    point_id=pid,
                )
            )
    embedder = base.embedder
    marker_value = f"{embedder.cache_key}\n{identity.hexdigest()}\n"
    where = bench.home / "chunkers" / slug(name)
    marker = where / "built"
    fresh = not (marker.is_file() and marker.read_text() == marker_value)
    if fresh and where.exists():
        shutil.rmtree(where)
    store = EdgeStore(where / "index", embedder.dim)
    sync = IndexSync(store, embedder, base.sparse, bench.stack.engine)
    if fresh:
        for start in range(0, len(texts), sync.warm_batch):
            sync.vectors(texts[start : start + sync.warm_batch], count_reuse=False)
            report(f"embed ({name})", min(start + sync.warm_batch, len(texts)), len(texts))
        with Session(bench.stack.engine) as session:
            items = [
                (
                    service.get_article(session, live_version.article_id),
                    service.get_version(session, live_version.version_id),
                    chunks.get(live_version.version_id, []),
                )
                for live_version in live.values()
                if live_version.version_id in chunks
            ]
        for start in range(0, len(items), 200):
            sync.add_versions(items[start : start + 200])
            report(f"index ({name})", min(start + 200, len(items)), len(items))
        marker.write_text(marker_value)
    retriever = Retriever(
        store,
        embedder,
        base.sparse,
        base.catalog,
        freshness=base.freshness,
        fusion_k=base.fusion_k,
        overfetch=base.overfetch,
        today=base.today,
    )
    pieces_flat = [p for ps in pieces.values() for p in ps]
    tokens = [count_tokens(p.text) for p in pieces_flat]
    words = ChunkBudget.for_model(embedder.model_path)
    window = words.limit or 0  # what the encoder reads, less [CLS] and [SEP]
    model_lengths = [words.count(t) for t in texts]
    stats: dict[str, float] = {
        "chunks": len(pieces_flat),
        "mean_tokens": statistics.fmean(tokens) if tokens else 0.0,
        "max_tokens": max(tokens, default=0),
        "mean_wordpieces": statistics.fmean(model_lengths) if model_lengths else 0.0,
        "truncated": (
            sum(n > window for n in model_lengths) / len(model_lengths) if model_lengths else 0.0
        ),
        "chunk_s_per_1000_docs": 1000 * seconds / max(len(files), 1),
        "encoded": sync.embedded,  # texts the model ran on for this build (cache misses)
    }
    return Built(name, retriever, store, keys, stats)


def ranked_keys(built: Built, question: str, top_k: int) -> list[str]:
    passages = built.retriever.search(question, audience=Audience.patient, top_k=top_k)
    return dedupe([key for p in passages for key in built.keys.get(p.point_id, ())])


PAIRED = ("ndcg@10", "mrr@10", "answer@1", "recall@5")


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of b - a over the same questions, with a 95% bootstrap interval (paired)."""
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    if not diffs:
        return 0.0, 0.0, 0.0
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(statistics.fmean(rng.choices(diffs, k=n)) for _ in range(resamples))
    return statistics.fmean(diffs), means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def run(
    bench: Bench,
    split: medquad.Split = "dev",
    *,
    n: int | None = 1000,
    k: int = 10,
    chunkers: dict[str, Chunker] | None = None,
    report: Report = quiet,
) -> dict[str, Any]:
    """Every chunker on the same questions, hybrid retrieval, passage-level scores (dev only).

    The first chunker is the reference: every other one gets its paired difference from
    it per question, with a 95% bootstrap interval (`paired`, and a note each).
    """
    if split != "dev":
        raise ValueError("choosing a chunker is tuning: it runs on dev only, never on test")
    chunkers = default_chunkers() if chunkers is None else chunkers
    questions, _ = split_questions(bench, split, n)
    embedder = bench.stack.retriever.embedder
    for q in questions:  # embedded once up front: ms_per_query is the index's alone
        embedder.embed_query(q.question)
    configurations: dict[str, dict[str, float]] = {}
    per_question: dict[str, list[dict[str, float]]] = {}
    for name, chunker in chunkers.items():
        built = build(bench, name, chunker, report=report)
        try:
            rows: list[dict[str, float]] = []
            started = time.perf_counter()
            for i, q in enumerate(questions, start=1):
                ranked = ranked_keys(built, q.question, k * 2)
                rows.append(passage_scores(ranked[:k], q.relevant))
                report(f"retrieval ({name})", i, len(questions))
            elapsed = time.perf_counter() - started
        finally:
            built.close()
        per_question[name] = rows
        means = {m: statistics.fmean(r[m] for r in rows) for m in rows[0]} if rows else {}
        configurations[name] = (
            means
            | built.stats
            | {"questions": len(rows), "ms_per_query": 1000 * elapsed / max(len(rows), 1)}
        )
    reference, *others = list(per_question)
    paired: dict[str, dict[str, list[float]]] = {}
    notes: list[str] = []
    for name in others:
        paired[name] = {}
        for metric in PAIRED if per_question[name] else ():
            delta, low, high = paired_difference(
                [r[metric] for r in per_question[reference]],
                [r[metric] for r in per_question[name]],
            )
            paired[name][metric] = [delta, low, high]
            notes.append(
                f"{name} - {reference}: {metric} {delta:+.3f} (95% CI {low:+.3f} to {high:+.3f})"
            )
    return {
        "suite": "chunkers",
        "dataset": "medquad",
        "split": split,
        "mode": "hybrid",
        "fusion_k": bench.stack.retriever.fusion_k,
        "configurations": configurations,
        "reference": reference,
        "paired": paired,
        "notes": notes,
        "failures": [],
        "corpus": {
            "articles": len(bench.corpus_docs),
            "held_out_articles": len(bench.docs) - len(bench.corpus_docs),
        },
        "attribution": medquad.ATTRIBUTION,
    }
