"""The shipped relevance model (models/canon-rerank) and how it reads pairs."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from canon.runtime import Runtime
from evals import relevance
from governance.errors import InvalidInput
from governance.models import Audience
from retrieval.rerank import RERANK_DIR, RERANK_FILE, OnnxCrossEncoder, encode_pairs
from tests.offline import run_offline

ROOT = Path(__file__).resolve().parents[2]

# Written for this test (no eval or training question): a question, the passage that
# answers it, and passages that share its words without answering it.
CASES = [
    (
        "my daughter has asthma and gets out of breath at soccer, how is asthma treated?",
        "How is asthma treated?\nAsthma is treated with quick-relief inhalers for attacks "
        "and daily controller medicines such as inhaled corticosteroids.",
        [
            "Parking for asthma clinic visits\nThe garage on Elm Street is free for the first "
            "hour; validate your ticket at the front desk.",
            "What causes gout?\nGout is caused by uric acid crystals in a joint.",
        ],
    ),
    (
        "what are the symptoms of shingles? i have a rash on one side of my back",
        "What are the signs and symptoms of shingles?\nShingles causes a painful rash with "
        "blisters, usually in a band on one side of the body, often with burning or tingling.",
        [
            "How to pay your bill\nPay online, by phone or by mail; we accept cards and checks.",
            "Who should get the shingles vaccine?\nAdults 50 and older should get two doses.",
        ],
    ),
    (
        "can i get an itemized bill for my hospital stay",
        "Requesting an itemized bill\nCall Patient Financial Services or use the portal to "
        "request an itemized statement of every charge for your stay.",
        [
            "Visiting hours\nVisitors are welcome from 8 a.m. to 8 p.m. on most units.",
            "What is hepatitis B?\nHepatitis B is a liver infection caused by a virus.",
        ],
    ),
]


@pytest.fixture(scope="module")
def model() -> OnnxCrossEncoder:
    return OnnxCrossEncoder()


def test_the_weights_match_the_cards_checksum_and_size() -> None:
    meta = json.loads((RERANK_DIR / "model.json").read_text())
    data = (RERANK_DIR / RERANK_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    assert len(data) < 40 * 2**20
    assert meta["sha256"] in (RERANK_DIR / "README.md").read_text()


def test_it_loads_offline_in_a_fresh_process() -> None:
    code = (
        "from retrieval.rerank import OnnxCrossEncoder\n"
        "s = OnnxCrossEncoder().scores('how is asthma treated', "
        "['Asthma is treated with inhalers.', 'The garage is on Elm Street.'])\n"
        "print(s[0] > s[1])\n"
    )
    assert run_offline(code) == "True"


def test_a_changed_weights_file_is_refused_naming_it(tmp_path: Path) -> None:
    copy = tmp_path / "canon-rerank"
    shutil.copytree(RERANK_DIR, copy)
    data = bytearray((copy / RERANK_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / RERANK_FILE).write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"model-int8\.onnx: SHA-256"):
        OnnxCrossEncoder(copy)


@pytest.mark.parametrize("question,relevant,others", CASES)
def test_the_answering_passage_scores_above_the_others(
    model: OnnxCrossEncoder, question: str, relevant: str, others: list[str]
) -> None:
    scores = model.scores(question, [relevant, *others])
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > max(scores[1:]), scores


def test_rerank_orders_passages_by_the_models_probability(
    model: OnnxCrossEncoder, sample_runtime: Runtime
) -> None:
    retriever = sample_runtime.retriever
    passages = retriever.search("can i get an itemized bill", audience=Audience.patient, top_k=8)
    ranked = model.rerank("can i get an itemized bill", passages)
    assert sorted(p.point_id for p in ranked) == sorted(p.point_id for p in passages)
    assert [p.score for p in ranked] == sorted((p.score for p in ranked), reverse=True)
    assert ranked[0].article_id == "billing-itemized-bill"


def test_pairs_cut_the_question_before_the_passage() -> None:
    tok = Tokenizer.from_file(str(RERANK_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    question = " ".join(f"w{i}" for i in range(200)) + " what is the treatment"
    passage = "treatment " * 400
    ids, mask, types = encode_pairs(
        tok, question, [passage, "short"], max_length=96, question_max=32
    )
    assert ids.shape == (2, 96) and mask[0].sum() == 96 and mask[1].sum() < 96
    first_sep = list(ids[0]).index(tok.token_to_id("[SEP]"))
    question_part = tok.decode([int(i) for i in ids[0][1:first_sep]])
    assert question_part.startswith("w0 w1") and question_part.endswith("what is the treatment")
    assert first_sep == 33  # [CLS] + 32 question pieces
    assert types[0][first_sep + 1] == 1 and types[0][first_sep] == 0


def test_roc_auc_counts_ties_half() -> None:
    assert relevance.roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert relevance.roc_auc([0.5], [0.5]) == 0.5
    assert relevance.roc_auc([0.1, 0.9], [0.5]) == 0.5


class WordOverlap:
    """A stand-in model for the eval's plumbing: share of question words in the passage."""

    def scores(self, question: str, texts: list[str]) -> list[float]:
        words = set(question.lower().split())
        return [len(words & set(t.lower().split())) / max(1, len(words)) for t in texts]


def test_sample_abstention_scores_every_answerable_and_unanswerable_question(
    sample_runtime: Runtime,
) -> None:
    out = relevance.sample_abstention(sample_runtime, {"overlap": WordOverlap()}, depth=5)  # type: ignore[dict-item]
    assert out["overlap"]["answerable"] > 100 and out["overlap"]["unanswerable"] > 50
    assert out["overlap"]["unanswerable"] == out["dense cosine"]["unanswerable"]
    assert 0.5 < out["dense cosine"]["roc_auc"] <= 1.0
    assert sample_runtime.retriever.reranker is None
