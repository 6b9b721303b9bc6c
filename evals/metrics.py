"""Ranking metrics over article ids, with graded relevance."""

import math
from collections.abc import Mapping, Sequence


def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    if not relevant:
        return 0.0
    found = {a for a in ranked[:k] if relevant.get(a, 0) > 0}
    return len(found) / len(relevant)


def mrr_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    for rank, article in enumerate(ranked[:k], start=1):
        if relevant.get(article, 0) > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    def dcg(grades: Sequence[int]) -> float:
        return sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(grades))

    ideal = dcg(sorted(relevant.values(), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([relevant.get(a, 0) for a in ranked[:k]]) / ideal


def dedupe(items: Sequence[str]) -> list[str]:
    """First occurrence of each article: passages rank articles."""
    seen: set[str] = set()
    return [a for a in items if not (a in seen or seen.add(a))]  # type: ignore[func-returns-value]


def citation_precision(cited: Sequence[str], relevant: Mapping[str, int]) -> float:
    """Share of cited passages (by article) that are relevant to the question."""
    if not cited:
        return 0.0
    return sum(relevant.get(a, 0) > 0 for a in cited) / len(cited)
