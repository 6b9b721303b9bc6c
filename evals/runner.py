"""Runs golden sets against a scratch index built from the sample corpus.

The caller (the CLI, a test) supplies a factory that builds a stack over an
empty home directory, so evals never reach up into the composition root.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from evals import datasets
from evals.progress import Report, quiet
from governance.errors import InvalidInput
from ingest.bootstrap import publish_paths
from ingest.index import IndexSync
from retrieval.answer import AnswerService
from retrieval.hybrid import Retriever

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


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


SUITES = ("retrieval", "answers", "safety")


def run_sample(
    suite: str, dataset: str, make_stack: StackFactory, *, report: Report = quiet
) -> dict[str, Any]:
    """One suite over a scratch index of the sample corpus (two for safety: the
    retired-article probes retire articles in an index of their own)."""
    if suite not in SUITES:
        raise InvalidInput(f"suite {suite!r}: choose one of {', '.join(SUITES)}")
    questions = datasets.load(dataset)
    with tempfile.TemporaryDirectory(prefix="canon-eval-") as home:
        stack = make_stack(Path(home) / "main")
        retire_stack = make_stack(Path(home) / "retire") if suite == "safety" else None
        try:
            publish_sample(stack)
            if retire_stack is not None:
                publish_sample(retire_stack)
            return run_suite(suite, stack, questions, dataset, retire_stack, report)
        finally:
            stack.close()
            if retire_stack is not None:
                retire_stack.close()


def run_suite(
    suite: str,
    stack: Stack,
    questions: list[datasets.Question],
    dataset: str = "sample",
    retire_stack: Stack | None = None,
    report: Report = quiet,
) -> dict[str, Any]:
    from evals import suites

    if suite == "retrieval":
        return suites.retrieval(stack, questions, dataset=dataset, report=report)
    if suite == "answers":
        return suites.answers(stack, questions, dataset=dataset, report=report)
    return suites.safety(
        stack, questions, dataset=dataset, retire_stack=retire_stack, report=report
    )
