"""The relevance model's training data builder and training command (training/relevance)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals import consumer, medquad
from evals.baselines import held_out
from retrieval.rerank import OnnxCrossEncoder
from training.relevance import data

ROOT = Path(__file__).resolve().parents[2]


def _doc(file: str, doc_id: str, focus: str, pairs: list[tuple[str, str, str]]) -> medquad.MedDoc:
    return medquad.MedDoc(
        id=doc_id,
        file=file,
        source="GHR",
        url="",
        focus=focus,
        pairs=tuple(
            medquad.QAPair(f"{doc_id}-{i}", qtype, q, a, q) for i, (qtype, q, a) in enumerate(pairs)
        ),
    )


def _dev_doc_id(prefix: str, want_split: str = "dev") -> str:
    """A document id landing in `want_split`, whose file is neither dev-val nor held out."""
    for n in range(10_000):
        doc = _doc(f"3_GHR_QA/{prefix}{n}", f"{prefix}{n}", f"{prefix} disease {n}", [])
        if doc.split == want_split and not data.devval(doc) and not held_out(doc):
            return f"{prefix}{n}"
    raise AssertionError("no id found")


def test_medquad_pairs_grade_same_document_partly_and_never_use_the_test_split() -> None:
    a, b, t = _dev_doc_id("a"), _dev_doc_id("b"), _dev_doc_id("t", "test")
    doc_a = _doc(
        f"3_GHR_QA/{a}",
        a,
        f"a disease {a[1:]}",
        [
            ("symptoms", "What are the symptoms of A?", "Fever and rash."),
            ("treatment", "How is A treated?", "Rest and fluids."),
        ],
    )
    doc_b = _doc(f"3_GHR_QA/{b}", b, "b focus", [("information", "What is B?", "B is rare.")])
    doc_t = _doc(f"3_GHR_QA/{t}", t, "t focus", [("information", "What is T?", "T is secret.")])
    docs = [doc_a, doc_b, doc_t]
    passages = data.Passages()
    data.medquad_passages(docs, passages)
    key = medquad.passage_key
    ranked = [
        key(doc_t.article_id, "What is T?"),  # test split: never a training passage
        key(doc_a.article_id, "How is A treated?"),  # same document: not a negative
        key(doc_b.article_id, "What is B?"),
    ]
    pairs = data.medquad_pairs(docs, passages, lambda q: ranked, questions=100)
    mine = [p for p in pairs if p.question == "What are the symptoms of A?"]
    labels = {p.passage.split("\n")[0]: p.label for p in mine}
    assert labels == {
        "What are the symptoms of A?": 1.0,
        "How is A treated?": 0.5,
        "What is B?": 0.0,
    }
    assert not any("T is secret" in p.passage or p.question == "What is T?" for p in pairs)


def test_consumer_pairs_use_the_training_part_only() -> None:
    qs = consumer.load_questions()
    docs: list[medquad.MedDoc] = []
    passages = data.Passages()
    data.consumer_passages(qs, passages)
    index = consumer.PassageIndex.build(docs, qs)
    devtest = [q for q in qs if q.split == "devtest"]
    # a searcher that offers every devtest answer as a candidate: none may be used
    offered = [k for q in devtest for k in q.passage_keys()]
    twins = data.devtest_twins(qs)
    assert twins  # the two files repeat some devtest questions under other ids
    pairs = data.consumer_pairs(qs, index, passages, lambda q: offered)
    devtest_text = {q.text for q in devtest}
    assert pairs and not any(p.question in devtest_text for p in pairs)
    assert all(p.label == 0.0 or p.source == "consumer" for p in pairs)
    answers = {data.passage_text(h, a) for q in devtest for h, a, _ in q.sections()}
    assert not any(p.passage in answers for p in pairs)
    assert {p.label for p in pairs} >= {1.0}


def test_frontdoor_questions_name_real_sections() -> None:
    rows = data.load_frontdoor()
    sections = data.corpus_sections()
    nearest = lambda q: list(sections)[:12]  # noqa: E731
    pairs = data.frontdoor_pairs(rows, sections, nearest)  # raises on an unknown section
    assert sum(r["article"] is None for r in rows) >= 30  # questions the corpus cannot answer
    assert {p.label for p in pairs} >= {0.0, 1.0}
    sample = {
        json.loads(line)["question"].strip().lower()
        for line in (ROOT / "evals" / "datasets" / "sample.jsonl").read_text().splitlines()
    }
    assert not sample & {str(r["question"]).strip().lower() for r in rows}


def test_a_bad_frontdoor_row_names_the_file_and_row(tmp_path: Path) -> None:
    rows = [{"id": "x1", "question": "q", "article": "nope", "section": "none", "partly": []}]
    with pytest.raises(ValueError, match="x1"):
        data.frontdoor_pairs(rows, data.corpus_sections(), lambda q: [], path=tmp_path / "f")


def test_the_training_command_runs_end_to_end_and_ships_a_checked_model(tmp_path: Path) -> None:
    pairs = [
        data.Pair(
            "how is asthma treated",
            "Asthma treatment\nInhalers control asthma.",
            1.0,
            "a",
            "consumer",
        ),
        data.Pair(
            "how is asthma treated", "Parking\nThe garage is on Elm St.", 0.0, "a", "consumer"
        ),
        data.Pair("what causes gout", "Gout causes\nUric acid crystals.", 1.0, "b", "medquad"),
        data.Pair("what causes gout", "Gout treatment\nColchicine helps.", 0.5, "b", "medquad"),
        data.Pair("what causes gout", "Billing\nPay online.", 0.0, "b", "frontdoor"),
    ] * 4
    pairs_file = tmp_path / "pairs.jsonl"
    data.write(pairs, pairs_file)
    out = tmp_path / "model"
    out.mkdir()
    (out / "README.md").write_text("card kept\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.relevance.train",
            "--pairs",
            str(pairs_file),
            "--budget-minutes",
            "0.3",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "README.md").read_text() == "card kept\n"
    model = OnnxCrossEncoder(out)  # checksum verified on load
    assert model.meta["steps"] >= 1 and model.meta["pairs"]["consumer 1"] == 4
    assert (tmp_path / "work" / "checkpoint.pt").is_file()  # a rerun resumes from it
    scores = model.scores("how is asthma treated", ["Inhalers control asthma.", "Pay online."])
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores)


def test_canon_train_passes_its_options_to_the_training_commands() -> None:
    from typer.testing import CliRunner

    from canon.cli import app

    for command, option in (
        ("relevance", "--budget-minutes"),
        ("relevance-data", "--medquad-questions"),
        ("triage", "--folds"),
    ):
        done = CliRunner().invoke(app, ["train", command, "-h"])
        assert done.exit_code == 0, done.output
        assert option in done.output
