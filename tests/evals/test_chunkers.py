"""The chunker comparison (`canon eval chunkers`) on a tiny written corpus: no MedQuAD needed."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canon.cli import app
from canon.runtime import Runtime
from canon.settings import Settings
from evals import chunkers, medquad
from evals.baselines import Bench, held_out
from governance.errors import InvalidInput
from ingest.bootstrap import publish_paths
from ingest.chunk import ChunkBudget
from retrieval.catalog import FreshnessMode
from retrieval.embed import Embedder

LONG = " ".join(
    f"Sentence {i} says that the clinic keeps record number {i} for the annual review."
    for i in range(30)
)


def _doc(n: int, focus: str, answers: dict[str, str]) -> medquad.MedDoc:
    pairs = tuple(
        medquad.QAPair(f"q{n}-{i}", "information", question, answer, question)
        for i, (question, answer) in enumerate(answers.items())
    )
    return medquad.MedDoc(f"doc{n}", f"Test/{n:04d}", "Test", "", focus, pairs)


DOCS = [
    _doc(
        1,
        "Glaucoma",
        {"What is glaucoma?": "Glaucoma damages the optic nerve.", "How is it treated?": LONG},
    ),
    _doc(
        2,
        "Asthma",
        {
            "What is asthma?": "Asthma narrows the airways.",
            "Who gets asthma?": "- children\n- adults",
        },
    ),
    _doc(3, "Gout", {"What is gout?": "Gout is arthritis from uric acid crystals in a joint."}),
]


def _file(tmp_path: Path) -> tuple[Path, Path]:
    medquad.write_corpus(tmp_path, DOCS[:1])
    return tmp_path / "test" / f"{DOCS[0].article_id}.md", tmp_path


def test_section_chunkers_keep_headings_out_of_the_text_and_split_long_sections(
    tmp_path: Path,
) -> None:
    path, root = _file(tmp_path)
    for chunker in (chunkers.ours(ChunkBudget(60)), chunkers.markdown_sentences(64, 10)):
        pieces = chunker(path, root)
        assert {p.section for p in pieces} == {"What is glaucoma?", "How is it treated?"}
        assert all(p.sections == (p.section,) for p in pieces)
        assert not any("# " in p.text for p in pieces)
        assert sum(p.section == "How is it treated?" for p in pieces) > 1
        assert pieces[0].text == "Glaucoma damages the optic nerve."


def test_whole_article_nodes_credit_every_section_they_span(tmp_path: Path) -> None:
    path, root = _file(tmp_path)
    (piece,) = chunkers.whole_article_sentences(1024, 200)(path, root)
    assert piece.section == ""
    assert piece.sections == ("How is it treated?", "Overview", "What is glaucoma?")
    keys = chunkers.passage_keys(DOCS[0].article_id, piece)
    assert keys[0] == medquad.passage_key(DOCS[0].article_id, "How is it treated?")


def test_paired_difference_is_exact_for_a_constant_shift_and_zero_for_a_tie() -> None:
    a = [0.0, 0.5, 1.0, 0.25] * 50
    assert chunkers.paired_difference(a, a) == (0.0, 0.0, 0.0)
    delta, low, high = chunkers.paired_difference(a, [x + 0.1 for x in a])
    assert delta == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    mixed = chunkers.paired_difference(a, list(reversed(a)))
    assert mixed[1] < 0 < mixed[2]


@pytest.fixture
def bench(tmp_path: Path, embedder: Embedder) -> Iterator[Bench]:
    assert not any(held_out(d) for d in DOCS)
    settings = Settings(home=tmp_path / "home", freshness_mode=FreshnessMode.flag)
    rt = Runtime(settings, embedder=embedder)
    medquad.write_corpus(settings.home / "corpus", DOCS)
    publish_paths(rt.engine, rt.sync, [settings.home / "corpus"], author="test")
    yield Bench(settings.home, DOCS, rt, None)
    rt.close()


@pytest.mark.slow
def test_each_chunker_gets_its_own_index_and_the_same_questions(bench: Bench) -> None:
    candidates = {
        "ours": chunkers.ours(),  # as published: every text already in the cache
        "md": chunkers.markdown_sentences(64, 10),
        "whole": chunkers.whole_article_sentences(),
    }
    dev = [q for q in medquad.questions(DOCS) if q.split == "dev"]
    result = chunkers.run(bench, "dev", n=None, chunkers=candidates)
    assert set(result["configurations"]) == set(candidates)
    for name, row in result["configurations"].items():
        assert row["questions"] == len(dev)
        assert 0 < row["ndcg@10"] <= 1
        assert row["chunks"] >= 1
        assert (bench.home / "chunkers" / chunkers.slug(name) / "built").is_file()
    rows = result["configurations"]
    assert rows["whole"]["chunks"] == len(DOCS)
    assert rows["ours"]["chunks"] > len(DOCS) + 1
    assert rows["ours"]["encoded"] == 0  # the same texts the published index embedded
    assert rows["md"]["encoded"] > 0
    assert result["reference"] == "ours" and set(result["paired"]) == {"md", "whole"}
    assert len(result["notes"]) == 2 * len(chunkers.PAIRED)

    markers = {n: bench.home / "chunkers" / chunkers.slug(n) / "built" for n in candidates}
    built_at = {n: m.stat().st_mtime_ns for n, m in markers.items()}
    again = chunkers.run(bench, "dev", n=None, chunkers=candidates)
    for name, row in again["configurations"].items():
        assert row["ndcg@10"] == rows[name]["ndcg@10"]
        assert row["encoded"] == 0  # nothing encoded twice
        assert markers[name].stat().st_mtime_ns == built_at[name]  # the index was reused

    with pytest.raises(ValueError, match="dev only"):
        chunkers.run(bench, "test", chunkers=candidates)


def test_cli_runs_chunkers_on_medquad_dev_only(tmp_path: Path) -> None:
    base = ["eval", "chunkers", "--output-dir", str(tmp_path), "--home", str(tmp_path / "h")]
    sample = CliRunner().invoke(app, [*base, "--dataset", "sample"])
    assert isinstance(sample.exception, InvalidInput), sample.output
    assert "MedQuAD" in str(sample.exception)
    test = CliRunner().invoke(app, [*base, "--dataset", "medquad", "--split", "test"])
    assert isinstance(test.exception, InvalidInput), test.output
    expected = medquad.missing_reason() or "dev only"
    assert expected in str(test.exception)
    assert not (tmp_path / "h").exists()


def test_candidates_are_ours_at_each_size_first_then_the_fixed_ones(tmp_path: Path) -> None:
    assert list(chunkers.default_chunkers()) == [
        "ours (192 word pieces)",  # the production size first
        "ours (256 word pieces)",
        "ours (200 regex tokens)",
        "md+sentence 256/20",
    ]
    sized = chunkers.default_chunkers(128, 192)
    assert list(sized)[:2] == ["ours (128 word pieces)", "ours (192 word pieces)"]
    path, root = _file(tmp_path)
    small, large = sized["ours (128 word pieces)"], sized["ours (192 word pieces)"]
    assert len(small(path, root)) > len(large(path, root))
