"""Optional rerank stage: a cross-encoder from a local directory re-orders fused passages.

Off by default (`CANON_RERANK_MODEL` unset). When on, the retriever over-fetches,
the cross-encoder scores (question, passage) pairs, and the passages come back in
that order with `score` set to the cross-encoder's score. `relevance` (the cosine
used for abstention) is left untouched, so thresholds calibrated without a
reranker keep their meaning.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from governance.errors import InvalidInput

if TYPE_CHECKING:
    from retrieval.hybrid import Passage


class Reranker(Protocol):
    def rerank(self, question: str, passages: Sequence["Passage"]) -> list["Passage"]: ...


class CrossEncoderReranker:
    def __init__(self, model_dir: str | Path, *, max_length: int = 256) -> None:
        from sentence_transformers import CrossEncoder

        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise InvalidInput(f"CANON_RERANK_MODEL={model_dir!s}: not a model directory")
        self.model_dir = path
        self._model = CrossEncoder(str(path), device="cpu", max_length=max_length)

    def scores(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        raw = self._model.predict(
            [(question, text) for text in texts], show_progress_bar=False, batch_size=32
        )
        array = np.asarray(raw, dtype=np.float32)
        if array.ndim == 2:  # a multi-label head: take the last column ("relevant")
            array = array[:, -1]
        return [float(x) for x in array]

    def rerank(self, question: str, passages: Sequence["Passage"]) -> list["Passage"]:
        scored = self.scores(question, [f"{p.section}\n{p.text}" for p in passages])
        ranked = sorted(zip(scored, range(len(passages)), strict=True), reverse=True)
        return [dataclasses.replace(passages[i], score=s) for s, i in ranked]
