"""Serve-time grounding check: every sentence must be supported by the passage it cites.

Three signals, cheapest first:
- lexical: the share of the sentence's content terms found in the passage; every
  number (hours, phone numbers, fees, days) must appear, so a changed figure is
  never supported;
- embedding: the best cosine between the sentence and any sentence of the passage,
  for sentences that are not verbatim copies (an LLM's paraphrase);
- NLI (when a model directory is configured): the passage must entail the sentence.

A sentence copied verbatim from its passage is supported by construction (its
embedding cosine with itself is 1 and the passage entails it), so the model-based
signals run only on sentences that are not.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from governance.errors import InvalidInput
from retrieval.text import content_terms, is_number, sentences

# Calibrated on the sample corpus (bench/calibrate_grounding.py, 1,246 hard negatives:
# sentences against a passage of another article in the same service line): 99% of
# them score below 0.68. The lexical floor and the number rule apply as well.
EMBED_THRESHOLD = 0.68


class TextEncoder(Protocol):
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class Support:
    score: float
    supported: bool
    missing: tuple[str, ...]
    lexical: float = 0.0
    semantic: float | None = None
    entailment: float | None = None


class NliModel:
    """A cross-encoder NLI model from a local directory; `entailment(premise, hypothesis)`."""

    def __init__(self, model_dir: str | Path) -> None:
        from sentence_transformers import CrossEncoder

        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise InvalidInput(f"CANON_NLI_MODEL={model_dir!s}: not a model directory")
        self._model = CrossEncoder(str(path), device="cpu")
        labels = {
            int(i): str(name).lower() for i, name in self._model.model.config.id2label.items()
        }
        entail = [i for i, name in labels.items() if name.startswith("entail")]
        if not entail:
            raise InvalidInput(
                f"CANON_NLI_MODEL={model_dir!s}: no 'entailment' label among "
                f"{sorted(labels.values())}"
            )
        self._entail = entail[0]

    def entailment(self, premise: str, hypothesis: str) -> float:
        probs = self._model.predict(
            [(premise, hypothesis)], apply_softmax=True, show_progress_bar=False
        )
        return float(np.asarray(probs)[0][self._entail])


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


class GroundingCheck:
    def __init__(
        self,
        threshold: float = 0.8,
        *,
        encoder: TextEncoder | None = None,
        embed_threshold: float = EMBED_THRESHOLD,
        lexical_floor: float = 0.5,
        nli: NliModel | None = None,
        nli_threshold: float = 0.5,
    ) -> None:
        self.threshold = threshold
        self.encoder = encoder
        self.embed_threshold = embed_threshold
        self.lexical_floor = lexical_floor
        self.nli = nli
        self.nli_threshold = nli_threshold

    def support(self, sentence: str, passage: str) -> Support:
        terms = content_terms(sentence)
        if not terms:
            return Support(0.0, False, ())
        available = content_terms(passage)
        missing = tuple(sorted(terms - available))
        lexical = 1.0 - len(missing) / len(terms)
        numbers_ok = not any(is_number(term) for term in missing)
        if not numbers_ok or lexical < self.lexical_floor:
            return Support(lexical, False, missing, lexical)
        if _normalise(sentence) in _normalise(passage):
            return Support(1.0, True, missing, lexical, 1.0, 1.0 if self.nli else None)
        semantic = self._semantic(sentence, passage)
        entailment = self.nli.entailment(passage, sentence) if self.nli else None
        supported = lexical >= self.threshold or (
            semantic is not None and semantic >= self.embed_threshold
        )
        if entailment is not None:
            supported = supported and entailment >= self.nli_threshold
        score = max(lexical, semantic or 0.0)
        if entailment is not None:
            score = min(score, entailment)
        return Support(score, supported, missing, lexical, semantic, entailment)

    def _semantic(self, sentence: str, passage: str) -> float | None:
        if self.encoder is None:
            return None
        units = sentences(passage) or [passage]
        vectors = self.encoder.embed([sentence, *units])
        return float(np.max(vectors[1:] @ vectors[0]))
