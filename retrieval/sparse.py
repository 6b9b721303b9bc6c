"""Sparse lexical vectors: Qdrant's own BM25, computed locally, IDF applied by the engine."""

from dataclasses import dataclass

from qdrant_edge import Bm25, Bm25Config


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


class SparseEncoder:
    """Document side carries BM25 term-frequency weights; query side weight 1 per term.

    The collection's sparse vector has the IDF modifier, so Qdrant multiplies in
    the inverse document frequency at query time, on Edge and on a server alike.
    """

    def __init__(self, *, avg_len: float = 120.0, k: float = 1.2, b: float = 0.75) -> None:
        self._bm25 = Bm25(Bm25Config(k=k, b=b, avg_len=avg_len, language="english"))

    def document(self, text: str) -> SparseVec:
        vec = self._bm25.embed_document(text)
        return SparseVec(list(vec.indices), list(vec.values))

    def query(self, text: str) -> SparseVec:
        vec = self._bm25.embed_query(text)
        return SparseVec(list(vec.indices), list(vec.values))
