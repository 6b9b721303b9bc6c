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
import numpy.typing as npt

from governance.errors import InvalidInput

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from retrieval.hybrid import Passage


class Reranker(Protocol):
    def rerank(self, question: str, passages: Sequence["Passage"]) -> list["Passage"]: ...


def pair_text(p: "Passage") -> str:
    """What a reranker reads of a passage: its section heading, then its text."""
    return f"{p.section}\n{p.text}"


def by_scores(passages: Sequence["Passage"], scores: Sequence[float]) -> list["Passage"]:
    """The passages best score first, each carrying its score (ties keep their order)."""
    ranked = sorted(zip(scores, range(len(passages)), strict=True), key=lambda t: (-t[0], t[1]))
    return [dataclasses.replace(passages[i], score=s) for s, i in ranked]


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
        return by_scores(passages, self.scores(question, [pair_text(p) for p in passages]))


# --- Canon's shipped relevance model (models/canon-rerank) ---------------------------

RERANK_DIR = Path(__file__).resolve().parent.parent / "models" / "canon-rerank"
RERANK_FILE = "model-int8.onnx"


def encode_pairs(
    tokenizer: "Tokenizer",
    question: str,
    passages: Sequence[str],
    *,
    max_length: int,
    question_max: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(input_ids, attention_mask, token_type_ids) of `[CLS] question [SEP] passage [SEP]`
    per passage, padded to the longest. The question is cut first, to `question_max` word
    pieces (its first two thirds and its last third: patients often end with the
    question itself), and the passage fills what is left of `max_length`. Training and
    serving both call this, so the model reads pairs the same way in both."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise InvalidInput("the relevance model's tokenizer has no [CLS] or [SEP] token")
    q = tokenizer.encode(question, add_special_tokens=False).ids
    if len(q) > question_max:
        head = (2 * question_max) // 3
        q = q[:head] + q[len(q) - (question_max - head) :]
    room = max(1, max_length - len(q) - 3)
    rows: list[list[int]] = []
    types: list[list[int]] = []
    encoded = tokenizer.encode_batch([p[: room * 12] for p in passages], add_special_tokens=False)
    for enc in encoded:
        p = enc.ids[:room]
        rows.append([cls_id, *q, sep_id, *p, sep_id])
        types.append([0] * (len(q) + 2) + [1] * (len(p) + 1))
    width = max((len(r) for r in rows), default=0)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    tt = np.zeros((len(rows), width), np.int64)
    for i, (r, t) in enumerate(zip(rows, types, strict=True)):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
        tt[i, : len(t)] = t
    return ids, mask, tt


class OnnxCrossEncoder:
    """The shipped relevance model, loaded offline with onnxruntime: all-MiniLM-L6-v2
    fine-tuned as a cross-encoder (`training/relevance/`), int8. `scores` returns the
    probability that a passage answers the question (a sigmoid of the model's logit).

    The weights' SHA-256 is checked against `model.json` at load: a swapped or
    truncated file fails here, naming the file."""

    def __init__(
        self, model_dir: str | Path = RERANK_DIR, *, weights: Path | None = None, threads: int = 0
    ) -> None:
        """`weights`: another graph of the same model (the fp32 one, to compare), read
        without a checksum; by default the card's int8 file, checked."""
        import hashlib
        import json

        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(model_dir).expanduser()
        card, graph = path / "model.json", weights or path / RERANK_FILE
        for needed in (card, graph, path / "tokenizer.json"):
            if not needed.is_file():
                raise InvalidInput(f"{needed}: missing; the relevance model is not complete")
        self.meta = json.loads(card.read_text("utf-8"))
        if weights is None:
            digest = hashlib.sha256(graph.read_bytes()).hexdigest()
            if digest != self.meta.get("sha256"):
                raise InvalidInput(
                    f"{graph}: SHA-256 {digest} does not match {card} ({self.meta.get('sha256')})"
                )
        self.model_dir = path
        self.max_length = int(self.meta["max_length"])
        self.question_max = int(self.meta["question_max"])
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"]
        )

    def logits(self, question: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros(0, np.float32)
        ids, mask, types = encode_pairs(
            self._tokenizer,
            question,
            texts,
            max_length=self.max_length,
            question_max=self.question_max,
        )
        out = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )[0]
        return np.asarray(out, np.float32).reshape(len(texts))

    def scores(self, question: str, texts: Sequence[str]) -> list[float]:
        return [float(x) for x in 1.0 / (1.0 + np.exp(-self.logits(question, texts)))]

    def rerank(self, question: str, passages: Sequence["Passage"]) -> list["Passage"]:
        return by_scores(passages, self.scores(question, [pair_text(p) for p in passages]))
