import math

import pytest

from evals.metrics import dedupe, mrr_at, ndcg_at, recall_at

RELEVANT = {"a": 2, "b": 1}


def test_recall() -> None:
    assert recall_at(["x", "a", "y", "b"], RELEVANT, 2) == 0.5
    assert recall_at(["x", "a", "y", "b"], RELEVANT, 4) == 1.0
    assert recall_at(["x"], {}, 5) == 0.0


def test_mrr() -> None:
    assert mrr_at(["x", "y", "b"], RELEVANT, 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "y", "b"], RELEVANT, 2) == 0.0


def test_ndcg_is_one_for_the_ideal_order_and_graded_otherwise() -> None:
    assert ndcg_at(["a", "b", "x"], RELEVANT, 10) == pytest.approx(1.0)
    swapped = ndcg_at(["b", "a"], RELEVANT, 10)
    ideal = 3 + 1 / math.log2(3)
    assert swapped == pytest.approx((1 + 3 / math.log2(3)) / ideal)
    assert 0 < swapped < 1


def test_dedupe_keeps_first_occurrence() -> None:
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
