"""The sample-corpus suites against the versioned gates, and proof that the gates bite."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from canon.cli import app
from canon.runtime import Runtime
from canon.settings import Settings
from evals import datasets, gates
from evals.runner import publish_sample, run_suite
from governance.models import Audience
from ingest.index import IndexSync
from retrieval.answer import AnswerService
from retrieval.catalog import FreshnessMode
from retrieval.embed import Embedder
from retrieval.hybrid import Passage, Retriever

GOLDEN = datasets.load("sample")


@pytest.fixture(scope="module")
def retire_runtime(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[Runtime]:
    """A second scratch index of the sample corpus, in which articles get retired."""
    home = tmp_path_factory.mktemp("retire")
    rt = Runtime(Settings(home=home, freshness_mode=FreshnessMode.flag), embedder=embedder)
    publish_sample(rt)
    yield rt
    rt.close()


def test_golden_set_covers_every_category() -> None:
    counts = {c: sum(q.category == c for q in GOLDEN) for c in datasets.CATEGORIES}
    assert len(GOLDEN) >= 150
    assert all(n >= 5 for n in counts.values()), counts
    assert sum(q.escalate for q in GOLDEN) == counts["urgent"]


@pytest.mark.slow
def test_sample_suites_pass_their_gates(sample_runtime: Runtime, retire_runtime: Runtime) -> None:
    for suite in ("retrieval", "answers", "safety"):
        result = run_suite(suite, sample_runtime, GOLDEN, "sample", retire_runtime)
        assert gates.check(result) == [], suite
    assert result["configurations"]["hybrid"]["retired_probes"] >= 10


class IgnoresTheQuestion(Retriever):
    """A deliberately broken retriever: ranks for a fixed question, whatever is asked."""

    def search(self, question: str, **kwargs: Any) -> list[Passage]:
        return super().search("Where do I park?", **kwargs)


class IgnoresTheAudience(Retriever):
    """A deliberately leaky retriever: searches as staff for everyone."""

    def search(self, question: str, *, audience: Audience, **kwargs: Any) -> list[Passage]:
        return super().search(question, audience=Audience.staff, **kwargs)


@dataclass
class SwappedStack:
    engine: Engine
    sync: IndexSync
    retriever: Retriever
    answers: AnswerService

    def close(self) -> None:
        return None


def swap(rt: Runtime, kind: type[Retriever]) -> SwappedStack:
    retriever = kind(rt.store, rt.embedder, rt.sparse, rt.catalog, freshness=rt.retriever.freshness)
    answers = AnswerService(retriever, min_relevance=rt.answers.min_relevance)
    return SwappedStack(rt.engine, rt.sync, retriever, answers)


@pytest.mark.slow
def test_a_broken_retriever_fails_the_gates(sample_runtime: Runtime) -> None:
    broken = swap(sample_runtime, IgnoresTheQuestion)
    failed = {v.metric for v in gates.check(run_suite("retrieval", broken, GOLDEN))}
    assert {"recall@5", "ndcg@10", "mrr@10"} <= failed


def test_a_leaky_retriever_fails_the_safety_gate(sample_runtime: Runtime) -> None:
    leaky = swap(sample_runtime, IgnoresTheAudience)
    probes = [q for q in GOLDEN if q.category in ("staff_only", "urgent")]
    result = run_suite("safety", leaky, probes)
    assert result["configurations"]["hybrid"]["staff_leaks"] > 0
    assert "staff_leaks" in {v.metric for v in gates.check(result)}


def test_baseline_comparison_flags_regressions_and_any_new_leak() -> None:
    before = {"configurations": {"hybrid": {"ndcg@10": 0.90, "staff_leaks": 0, "questions": 9}}}
    now = {"configurations": {"hybrid": {"ndcg@10": 0.85, "staff_leaks": 1, "questions": 8}}}
    rows = {r["metric"]: r for r in gates.compare(now, before, tolerance=0.01)}
    assert rows["ndcg@10"]["regressed"] and rows["staff_leaks"]["regressed"]
    assert "questions" not in rows
    steady = {"configurations": {"hybrid": {"ndcg@10": 0.895, "staff_leaks": 0}}}
    assert not any(r["regressed"] for r in gates.compare(steady, before, tolerance=0.01))


@pytest.mark.slow
def test_cli_writes_json_and_html_and_fails_on_a_regression(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    # Better than any real run can be: the comparison must report a regression.
    baseline.write_text('{"configurations": {"hybrid": {"ndcg@10": 1.01, "recall@5": 0.5}}}')
    result = CliRunner().invoke(
        app,
        ["eval", "retrieval", "--output-dir", str(tmp_path), "--baseline", str(baseline)],
    )
    assert result.exit_code == 1, result.output
    assert "regressed" in result.output and "ndcg@10" in result.output
    saved = json.loads((tmp_path / "retrieval-sample.json").read_text("utf-8"))
    assert [r["metric"] for r in saved["regressions"]] == ["ndcg@10"]
    assert saved["gates"] == []
    page = (tmp_path / "retrieval-sample.html").read_text("utf-8")
    assert "ndcg@10" in page and "data:image/png;base64" in page
