"""Serve-time grounding check: every sentence must be supported by the passage it cites."""

from dataclasses import dataclass

from retrieval.text import content_terms, is_number


@dataclass(frozen=True)
class Support:
    score: float
    supported: bool
    missing: tuple[str, ...]


class GroundingCheck:
    """Lexical support: the share of a sentence's content terms found in its passage.

    Numbers (hours, phone numbers, fees, days) must all appear in the passage: a
    sentence that changes a figure is unsupported whatever its other words.
    """

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold

    def support(self, sentence: str, passage: str) -> Support:
        terms = content_terms(sentence)
        if not terms:
            return Support(0.0, False, ())
        available = content_terms(passage)
        missing = tuple(sorted(terms - available))
        score = 1.0 - len(missing) / len(terms)
        numbers_ok = not any(is_number(term) for term in missing)
        return Support(score, numbers_ok and score >= self.threshold, missing)
