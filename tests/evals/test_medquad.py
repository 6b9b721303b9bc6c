"""MedQuAD loader and corpus writer against the real data in ../shared (skipped without it)."""

import hashlib
from pathlib import Path

import pytest

from evals import medquad
from ingest.chunk import chunk_blocks
from ingest.parse import parse_file

pytestmark = pytest.mark.skipif(
    medquad.missing_reason() is not None, reason=medquad.missing_reason() or ""
)


def test_split_follows_the_data_readme() -> None:
    for doc_id in ("0000001_1", "0000004", "0001004"):
        expected = int(hashlib.sha1(doc_id.encode()).hexdigest(), 16) % 5 == 0
        assert (medquad.split_of(doc_id) == "test") is expected


def test_documents_have_unique_articles_and_no_empty_answers() -> None:
    docs = medquad.load_documents()
    assert len(docs) > 5000
    assert len({d.article_id for d in docs}) == len(docs)
    assert all(p.answer.strip() for d in docs for p in d.pairs)
    splits = {d.split for d in docs}
    assert splits == {"dev", "test"}
    test_share = sum(d.split == "test" for d in docs) / len(docs)
    assert 0.15 < test_share < 0.25


def test_written_articles_parse_and_every_chunk_maps_to_a_passage(tmp_path: Path) -> None:
    docs = medquad.load_documents(limit=40)
    assert medquad.write_corpus(tmp_path, docs) == 40
    assert "CC BY 4.0" in (tmp_path / "_ATTRIBUTION.md").read_text("utf-8")
    for doc in docs:
        parsed = parse_file(
            tmp_path / doc.service_line / f"{doc.article_id}.md", tmp_path, max_bytes=10_000_000
        )
        assert parsed.article_id == doc.article_id
        assert parsed.meta.title == doc.focus
        assert parsed.meta.source_url == doc.url
        keys = {medquad.passage_key(doc.article_id, p.heading) for p in doc.pairs}
        for chunk in chunk_blocks(parsed.blocks, parsed.meta.title):
            assert medquad.passage_key(doc.article_id, chunk.section) in keys


def test_questions_grade_their_own_answer_2_and_siblings_1() -> None:
    docs = medquad.load_documents(limit=20)
    qs = medquad.questions(docs)
    assert len(qs) == sum(len(d.pairs) for d in docs)
    for q in qs:
        assert sorted(q.relevant.values()).count(2) == 1
        assert medquad.passage_key(q.article_id, q.heading) in q.relevant


def test_missing_data_gives_a_clear_skip_reason(tmp_path: Path) -> None:
    reason = medquad.missing_reason(tmp_path / "nowhere")
    assert reason is not None and reason.startswith("skipped:")
