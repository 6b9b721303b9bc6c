"""Runs golden sets against a scratch index built from the sample corpus."""

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from canon.settings import Settings
from evals import datasets
from evals.metrics import dedupe, mrr_at, ndcg_at, recall_at
from ingest.bootstrap import publish_paths
from retrieval.store import Mode

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")


def build_sample(settings: Settings) -> Any:
    """A runtime over a fresh home with the sample corpus published (v2 revisions included)."""
    from canon.runtime import Runtime

    rt = Runtime(settings)
    publish_paths(rt.engine, rt.sync, [CORPUS], author="eval-author")
    revisions = sorted((CORPUS / "_revisions").glob("*.md"))
    if revisions:
        publish_paths(rt.engine, rt.sync, revisions, author="eval-author")
    return rt


def run_retrieval_eval(dataset: str, *, settings: Settings, k: int = 10) -> dict[str, Any]:
    questions = datasets.load(dataset)
    with tempfile.TemporaryDirectory(prefix="canon-eval-") as home:
        scratch = settings.model_copy(
            update={"home": Path(home), "database_url": None, "qdrant_url": None}
        )
        rt = build_sample(scratch)
        try:
            return _evaluate(rt, questions, dataset, k)
        finally:
            rt.close()


def _evaluate(rt: Any, questions: list[datasets.Question], dataset: str, k: int) -> dict[str, Any]:
    graded = [q for q in questions if q.answerable]
    results: dict[str, Any] = {"dataset": dataset, "modes": {}, "failures": []}
    for mode in MODES:
        rows = []
        started = time.perf_counter()
        for q in graded:
            passages = rt.retriever.search(q.question, audience=q.audience, top_k=k * 2, mode=mode)
            ranked = dedupe([p.article_id for p in passages])[:k]
            rows.append(
                {
                    "recall@5": recall_at(ranked, q.relevant, 5),
                    "recall@10": recall_at(ranked, q.relevant, 10),
                    "mrr@10": mrr_at(ranked, q.relevant, 10),
                    "ndcg@10": ndcg_at(ranked, q.relevant, 10),
                }
            )
            if mode == "hybrid" and mrr_at(ranked, q.relevant, 5) == 0:
                results["failures"].append(
                    {"id": q.id, "question": q.question, "expected": q.relevant, "got": ranked[:5]}
                )
        elapsed = time.perf_counter() - started
        metrics = {name: statistics.fmean(r[name] for r in rows) for name in rows[0]} if rows else {}
        results["modes"][mode] = metrics | {
            "questions": len(rows),
            "ms_per_query": 1000 * elapsed / max(len(rows), 1),
        }
    results["abstention"] = _abstention(rt, questions)
    return results


def _abstention(rt: Any, questions: list[datasets.Question]) -> dict[str, Any]:
    unanswerable = [q for q in questions if q.category == "unanswerable"]
    answerable = [q for q in questions if q.answerable]
    abstained_right = sum(
        rt.answers.answer(q.question, audience=q.audience).abstained for q in unanswerable
    )
    abstained_wrong = sum(
        rt.answers.answer(q.question, audience=q.audience).abstained for q in answerable
    )
    return {
        "unanswerable": len(unanswerable),
        "abstention_accuracy": abstained_right / max(len(unanswerable), 1),
        "answerable": len(answerable),
        "false_abstention_rate": abstained_wrong / max(len(answerable), 1),
        "min_relevance": rt.answers.min_relevance,
    }
