"""The consumer-question eval (`canon eval consumer`): parsing, the split, graded relevance,
the metrics, and one tiny run end to end (the data tests skip without ../shared)."""

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canon.cli import app
from evals import consumer, medquad
from evals.consumer import ConsumerQuestion, PassageIndex, SubQuestion
from governance.errors import InvalidInput
from ingest.chunk import chunk_blocks
from ingest.parse import parse_file

needs_data = pytest.mark.skipif(
    consumer.missing_reason() is not None, reason=consumer.missing_reason() or ""
)
needs_both = pytest.mark.skipif(
    consumer.missing_reason() is not None or medquad.missing_reason() is not None,
    reason="needs ../shared/data/consumer-questions and ../shared/data/medquad",
)


def _question(qid: str, subs: list[tuple[list[str], list[str], list[str]]]) -> ConsumerQuestion:
    parts = tuple(SubQuestion(tuple(f), tuple(t), tuple(a)) for f, t, a in subs)
    return ConsumerQuestion(
        id=qid,
        text=f"question {qid}",
        split=consumer.split_of(qid),
        foci=tuple(dict.fromkeys(f for s in parts for f in s.foci)),
        types=tuple(dict.fromkeys(t for s in parts for t in s.types)),
        answers=tuple(a for s in parts for a in s.answers),
        subquestions=parts,
    )


def _doc(n: int, focus: str, pairs: dict[str, tuple[str, str]]) -> medquad.MedDoc:
    """`pairs`: heading -> (qtype, answer)."""
    return medquad.MedDoc(
        f"doc{n}",
        f"Test/{n:04d}",
        "Test",
        "",
        focus,
        tuple(
            medquad.QAPair(f"q{n}-{i}", qtype, heading, answer, heading)
            for i, (heading, (qtype, answer)) in enumerate(pairs.items())
        ),
    )


# --- parsing and the split -----------------------------------------------------------


@needs_data
def test_both_files_parse_with_their_published_counts() -> None:
    one = consumer.parse_file(consumer.DATA_ROOT / consumer.FILES[0], "nlm1")
    two = consumer.parse_file(consumer.DATA_ROOT / consumer.FILES[1], "nlm2")
    assert (len(one), len(two)) == (183, 215)
    assert sum(len(q.answers) for q in one) == 354
    assert sum(len(q.answers) for q in two) == 215
    qs = consumer.load_questions()
    assert len(qs) == 398
    assert len({q.id for q in qs}) == 398
    assert len({q.article_id for q in qs}) == 398
    assert one[0].id == "nlm1-Q1" and two[0].id == "nlm2-1.0"
    assert two[0].text.startswith("Lyme Disease\n12 years ago I was bitten")  # subject + message
    for q in qs:
        assert q.text and q.answers and q.foci and q.types
        assert all(s.foci and s.types and s.answers for s in q.subquestions)


@needs_data
def test_a_byte_order_mark_is_harmless(tmp_path: Path) -> None:
    source = consumer.DATA_ROOT / consumer.FILES[1]
    copy = tmp_path / "bom.xml"
    copy.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    assert consumer.parse_file(copy, "nlm2") == consumer.parse_file(source, "nlm2")


@needs_data
def test_every_annotated_type_has_a_mapping_onto_medquad_types() -> None:
    types = {t for q in consumer.load_questions() for t in q.types}
    assert len(types) == 23
    assert types == set(consumer.TYPE_MAP)
    assert {m for ms in consumer.TYPE_MAP.values() for m in ms} <= consumer.MEDQUAD_QTYPES


@needs_both
def test_medquad_types_are_the_ones_the_map_knows() -> None:
    docs = medquad.load_documents(limit=400)
    assert {p.qtype for d in docs for p in d.pairs} <= consumer.MEDQUAD_QTYPES


def test_split_is_sha1_of_the_id_mod_5() -> None:
    for qid in ("nlm1-Q1", "nlm2-1.0", "nlm2-77.0", "nlm1-Q150"):
        expected = int(hashlib.sha1(qid.encode()).hexdigest(), 16) % 5 == 0
        assert (consumer.split_of(qid) == "devtest") is expected
        assert consumer.split_of(qid) == consumer.split_of(qid)


@needs_data
def test_split_is_stable_about_a_fifth_and_disjoint() -> None:
    devtest = consumer.load_questions(split="devtest")
    train = consumer.load_questions(split="train")
    assert [q.id for q in devtest] == [q.id for q in consumer.load_questions(split="devtest")]
    assert not {q.id for q in devtest} & {q.id for q in train}
    assert len(devtest) + len(train) == 398
    assert 0.15 < len(devtest) / 398 < 0.25
    subset = consumer.load_questions(limit=30)
    assert len(subset) == 30 and subset == consumer.load_questions(limit=30)


# --- relevance -----------------------------------------------------------------------


def test_focus_keys_normalise_case_possessives_plurals_and_alternatives() -> None:
    keys = consumer.focus_keys
    assert keys("Cushing's Syndrome") == keys("cushing syndrome") == {"cushing syndrome"}
    assert keys("Migraines") == keys("migraine")
    assert keys("Rocky Mountain Spotted Fever (RMSF)") == {"rocky mountain spotted fever", "rmsf"}
    assert keys("anxiety/ depression") == {"anxiety", "depression"}
    assert keys("Gilbert's disease") == keys("gilberts disease")
    assert keys("Amyloidosis") != keys("AL amyloidosis")  # exact keys only
    assert keys("Multiple sclerosis") == {"multiple sclerosis"}  # "-is" keeps its s


def test_graded_relevance_on_hand_made_passages() -> None:
    q = _question("nlm1-Q9", [(["Migraine"], ["treatment"], ["Rest in a dark room helps."])])
    same_type = _question("nlm1-Q10", [(["migraines"], ["treatment"], ["Triptans can help."])])
    other = _question("nlm1-Q11", [(["Gout"], ["treatment"], ["Rest in a dark room helps."])])
    docs = [
        _doc(
            1,
            "Migraine",
            {
                "How to treat migraine?": ("treatment", "Medicines reduce attacks."),
                "What is migraine?": ("information", "A migraine is a headache."),
                "What causes migraine?": ("causes", "Triggers vary."),
            },
        ),
        _doc(2, "Familial hemiplegic migraine", {"Treatment?": ("treatment", "Care.")}),
        _doc(3, "Asthma", {"What is asthma?": ("information", "Rest in a dark room helps.")}),
    ]
    index = PassageIndex.build(docs, [q, same_type, other])
    grades = consumer.grades(q, index)
    key = medquad.passage_key
    own = q.passage_keys()
    assert own == [key(q.article_id, "Migraine: treatment")]
    assert grades == {
        own[0]: 2,  # its own reference answer
        key(docs[0].article_id, "How to treat migraine?"): 2,  # same focus, mapped type
        key(docs[0].article_id, "What is migraine?"): 1,  # same focus, other type
        key(docs[0].article_id, "What causes migraine?"): 1,
        same_type.passage_keys()[0]: 2,  # another reference answer: same focus and type
        other.passage_keys()[0]: 2,  # another focus, but a copy of its own answer
        key(docs[2].article_id, "What is asthma?"): 2,  # a MedQuAD copy of it too
    }  # "Familial hemiplegic migraine" is another focus: 0, left out


def test_focus_and_type_pair_within_one_sub_question() -> None:
    q = _question(
        "nlm1-Q12",
        [(["Migraine"], ["treatment"], ["a"]), (["Gout"], ["cause"], ["b"])],
    )
    docs = [
        _doc(1, "Migraine", {"Causes?": ("causes", "x"), "Treat?": ("treatment", "y")}),
        _doc(2, "Gout", {"Causes?": ("causes", "z"), "Treat?": ("treatment", "w")}),
    ]
    grades = consumer.grades(q, PassageIndex.build(docs, [q]))
    key = medquad.passage_key
    assert grades[key(docs[0].article_id, "Treat?")] == 2
    assert grades[key(docs[0].article_id, "Causes?")] == 1  # cause was asked about gout
    assert grades[key(docs[1].article_id, "Causes?")] == 2
    assert grades[key(docs[1].article_id, "Treat?")] == 1


def test_drug_types_map_to_no_medquad_type_so_same_focus_is_partly_relevant() -> None:
    q = _question("nlm1-Q13", [(["Asthma"], ["dosage"], ["Two puffs."])])
    doc = _doc(1, "Asthma", {"Treat?": ("treatment", "Inhalers.")})
    grades = consumer.grades(q, PassageIndex.build([doc], [q]))
    assert grades[medquad.passage_key(doc.article_id, "Treat?")] == 1


def test_scores_use_grade_2_for_mrr_and_grades_for_ndcg() -> None:
    relevant = {"a": 2, "b": 1, "own": 2}
    assert consumer.scores(["x", "b", "a", "own"], relevant, ["own"]) == pytest.approx(
        {
            "ndcg@10": ((2**1 - 1) / 1.585 + 3 / 2 + 3 / 2.3219) / (3 + 3 / 1.585 + 1 / 2),
            "mrr@10": 1 / 3,
            "mrr@10 (partly)": 1 / 2,
            "answer@10": 1.0,
        },
        abs=1e-3,
    )
    assert consumer.scores(["x"], relevant, ["own"]) == {
        "ndcg@10": 0.0,
        "mrr@10": 0.0,
        "mrr@10 (partly)": 0.0,
        "answer@10": 0.0,
    }


def test_headings_are_unique_and_every_chunk_maps_to_a_passage(tmp_path: Path) -> None:
    long = " ".join(f"Sentence {i} explains one more thing about the dose." for i in range(80))
    q = _question(
        "nlm2-3.0",
        [
            (["Lyme Disease"], ["treatment"], ["First answer.", long]),
            (["Lyme Disease"], ["cause"], ["Ticks."]),
        ],
    )
    assert len(set(q.passage_keys())) == 3
    assert consumer.write_corpus(tmp_path, [q]) == 1
    assert "TREC 2017 LiveQA" in (tmp_path / "_ATTRIBUTION.md").read_text("utf-8")
    parsed = parse_file(
        tmp_path / consumer.SERVICE_LINE / f"{q.article_id}.md", tmp_path, max_bytes=10**7
    )
    assert parsed.article_id == q.article_id == "consumer-nlm2-3-0"
    chunks = chunk_blocks(parsed.blocks, parsed.meta.title)
    assert len(chunks) > 3  # the long answer is split
    assert {medquad.passage_key(q.article_id, c.section) for c in chunks} == set(q.passage_keys())


def test_a_built_medquad_home_is_copied_into_an_empty_home_only(tmp_path: Path) -> None:
    source, home = tmp_path / "medquad", tmp_path / "consumer"
    (source / "llamaindex").mkdir(parents=True)
    (source / "canon.db").write_text("db")
    (source / "index").mkdir()
    assert not consumer.seed_home(home, tmp_path / "missing")
    assert consumer.seed_home(home, source)
    assert (home / "canon.db").read_text() == "db" and (home / "index").is_dir()
    assert not (home / "llamaindex").exists()
    (source / "canon.db").write_text("changed")
    assert not consumer.seed_home(home, source)  # never over a home that exists
    assert (home / "canon.db").read_text() == "db"


# --- the command ---------------------------------------------------------------------


def test_cli_refuses_an_unknown_split(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "consumer", "--split", "test", "--home", str(tmp_path / "h")]
    )
    assert isinstance(result.exception, InvalidInput), result.output
    reason = consumer.missing_reason() or medquad.missing_reason() or "devtest or train"
    assert reason in str(result.exception)
    assert not (tmp_path / "h").exists()


@needs_both
@pytest.mark.slow
def test_cli_runs_end_to_end_on_a_tiny_subset(tmp_path: Path) -> None:
    """8 MedQuAD documents and 8 consumer questions, built from nothing, then reused."""
    args = [
        "eval",
        "consumer",
        "--limit",
        "8",
        "--split",
        "train",
        "--home",
        str(tmp_path / "consumer"),
        "--medquad-home",
        str(tmp_path / "medquad"),
        "--output-dir",
        str(tmp_path / "out"),
        "--json",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    result = json.loads((tmp_path / "out" / "retrieval-consumer-train.json").read_text())
    assert (tmp_path / "out" / "retrieval-consumer-train.html").is_file()
    train = [q for q in consumer.load_questions(limit=8) if q.split == "train"]
    assert result["dataset"] == "consumer" and result["split"] == "train"
    assert set(result["configurations"]) >= {"bm25", "dense", "hybrid"}
    assert result["corpus"]["reference_articles"] == 8
    for row in result["configurations"].values():
        assert row["questions"] == len(train)
        # every question's own answers are indexed, among a handful of articles
        assert row["answer@10"] > 0.5 and 0 < row["ndcg@10"] <= 1
    again = CliRunner().invoke(app, args)  # the home is reused: nothing rebuilt
    assert again.exit_code == 0, again.output
    rerun = json.loads((tmp_path / "out" / "retrieval-consumer-train.json").read_text())
    assert rerun["configurations"]["hybrid"]["ndcg@10"] == pytest.approx(
        result["configurations"]["hybrid"]["ndcg@10"]
    )
