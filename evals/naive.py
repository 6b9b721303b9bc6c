"""The naive LlamaIndex baseline: library defaults, our embedding model, no LLM.

`VectorStoreIndex` over whole articles split by the default `SentenceSplitter`
(1024 tokens, 200 overlap) into the default in-memory vector store, persisted so
it is embedded once. Nothing calls an LLM or the network: `Settings.llm` is None
and the embedding model is our local `Embedder`.
"""

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core import (
    Document,
    Settings,
    StorageContext,
    VectorStoreIndex,
    load_index_from_storage,
)
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from retrieval.embed import Embedder

_SECTION = re.compile(r"^## (.+)$", re.MULTILINE)


class LocalEmbedding(BaseEmbedding):
    """LlamaIndex's embedding interface over Canon's local sentence-transformers model."""

    _embedder: Embedder = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.model_name, embed_batch_size=64, **kwargs)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._embedder.embed_query(query)]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self._embedder.embed(texts)]


@dataclass(frozen=True)
class NaiveHit:
    article_id: str
    sections: tuple[str, ...]  # `## ` headings the node spans, the most-overlapped first
    score: float

    @property
    def section(self) -> str:
        return self.sections[0]


def _sections(text: str) -> tuple[list[int], list[str]]:
    starts, names = [0], ["Overview"]
    for match in _SECTION.finditer(text):
        starts.append(match.start())
        names.append(match.group(1).strip())
    return starts, names


def spanned_sections(text: str, start: int, end: int) -> tuple[str, ...]:
    starts, names = _sections(text)
    bounds = [*starts[1:], len(text)]
    first = max(bisect.bisect_right(starts, start) - 1, 0)
    overlaps: list[tuple[int, str]] = []
    for i in range(first, len(starts)):
        if starts[i] >= end:
            break
        overlaps.append((min(end, bounds[i]) - max(start, starts[i]), names[i]))
    if not overlaps:
        return (names[first],)
    best = max(overlaps, key=lambda o: o[0])[1]
    return (best, *(name for _, name in overlaps if name != best))


class NaiveIndex:
    def __init__(self, index: VectorStoreIndex, texts: dict[str, str]) -> None:
        self.index = index
        self.texts = texts

    @classmethod
    def open(
        cls,
        persist_dir: Path,
        articles: Sequence[tuple[str, str]],
        embedder: Embedder,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> "NaiveIndex":
        """Load the persisted index, or build it from (article_id, markdown body) pairs."""
        Settings.llm = None
        embed_model = LocalEmbedding(embedder)
        Settings.embed_model = embed_model
        texts = dict(articles)
        if (persist_dir / "docstore.json").is_file():
            storage = StorageContext.from_defaults(persist_dir=str(persist_dir))
            index = load_index_from_storage(storage, embed_model=embed_model)
            return cls(index, texts)
        documents = [
            Document(
                text=text,
                id_=article_id,
                metadata={"article_id": article_id},
                excluded_embed_metadata_keys=["article_id"],
                excluded_llm_metadata_keys=["article_id"],
            )
            for article_id, text in articles
        ]
        # One `from_documents` call, as the library's quick start does (inserting
        # document by document re-serialises the growing index each time).
        index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
        if on_progress is not None:
            on_progress(len(documents), len(documents))
        persist_dir.mkdir(parents=True, exist_ok=True)
        index.storage_context.persist(persist_dir=str(persist_dir))
        return cls(index, texts)

    def search(self, question: str, top_k: int = 10) -> list[NaiveHit]:
        hits: list[NaiveHit] = []
        for scored in self.index.as_retriever(similarity_top_k=top_k).retrieve(question):
            node = scored.node
            article_id = str(node.metadata.get("article_id", ""))
            text = self.texts.get(article_id, "")
            start = node.start_char_idx or 0
            end = node.end_char_idx or start + 1
            hits.append(NaiveHit(article_id, spanned_sections(text, start, end), scored.score or 0))
        return hits
