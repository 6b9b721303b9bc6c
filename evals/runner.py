"""Runs golden sets against a scratch index built from the sample corpus.

The caller (the CLI, a test) supplies a factory that builds a stack over an
empty home directory, so evals never reach up into the composition root.
"""

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from evals import datasets
from evals.metrics import dedupe, mrr_at, ndcg_at, recall_at
from ingest.bootstrap import publish_paths
from ingest.index import IndexSync
from retrieval.answer import AnswerService
from retrieval.hybrid import Retriever
from retrieval.store import Mode

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")


class Stack(Protocol):
    @property
    def engine(self) -> Engine: ...
    @property
    def sync(self) -> IndexSync: ...
    @property
    def retriever(self) -> Retriever: ...
    @property
    def answers(self) -> AnswerService: ...
    def close(self) -> None: ...


StackFactory = Callable[[Path], Stack]


def publish_sample(stack: Stack, corpus: Path = CORPUS) -> None:
    """Publish the sample corpus, then its revisions (so version 2s are the live ones)."""
    publish_paths(stack.engine, stack.sync, [corpus], author="eval-author")
    revisions = sorted((corpus / "_revisions").glob("*.md"))
    if revisions:
        publish_paths(stack.engine, stack.sync, revisions, author="eval-author")


def run_retrieval_eval(dataset: str, make_stack: StackFactory, *, k: int = 10) -> dict[str, Any]:
    questions = datasets.load(dataset)
    with tempfile.TemporaryDirectory(prefix="canon-eval-") as home:
        stack = make_stack(Path(home))
        try:
            publish_sample(stack)
            return evaluate(stack, questions, dataset, k)
        finally:
            stack.close()


def evaluate(
    stack: Stack, questions: list[datasets.Question], dataset: str, k: int = 10
) -> dict[str, Any]:
    graded = [q for q in questions if q.answerable]
    results: dict[str, Any] = {"dataset": dataset, "modes": {}, "failures": []}
    for mode in MODES:
        rows = []
        started = time.perf_counter()
        for q in graded:
            passages = stack.retriever.search(
                q.question, audience=q.audience, top_k=k * 2, mode=mode
            )
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
        metrics = (
            {name: statistics.fmean(r[name] for r in rows) for name in rows[0]} if rows else {}
        )
        results["modes"][mode] = metrics | {
            "questions": len(rows),
            "ms_per_query": 1000 * elapsed / max(len(rows), 1),
        }
    results["abstention"] = abstention(stack, questions)
    return results


def abstention(stack: Stack, questions: list[datasets.Question]) -> dict[str, Any]:
    unanswerable = [q for q in questions if q.category == "unanswerable"]
    answerable = [q for q in questions if q.answerable]
    right = sum(
        stack.answers.answer(q.question, audience=q.audience).abstained for q in unanswerable
    )
    wrong = sum(stack.answers.answer(q.question, audience=q.audience).abstained for q in answerable)
    return {
        "unanswerable": len(unanswerable),
        "abstention_accuracy": right / max(len(unanswerable), 1),
        "answerable": len(answerable),
        "false_abstention_rate": wrong / max(len(answerable), 1),
        "min_relevance": stack.answers.min_relevance,
    }
