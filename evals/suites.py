"""The sample-corpus suites: retrieval, answers and safety, each one uniform result.

A result is `{suite, dataset, configurations: {name: {metric: value}}, failures}`,
so the CLI, the gates, the baseline comparison and the HTML report treat every
suite alike.
"""

import statistics
import time
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from evals import datasets
from evals.metrics import citation_precision, dedupe, mrr_at, ndcg_at, recall_at
from evals.progress import Report, quiet
from evals.runner import Stack
from governance import service
from governance.models import Audience
from governance.service import Actor, Role
from retrieval.answer import Answer
from retrieval.grounding import GroundingCheck
from retrieval.store import Mode
from retrieval.text import sentences

CONFIGS: dict[str, Mode] = {"hybrid": "hybrid", "dense": "dense", "bm25": "sparse"}


def _mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.fmean(r[name] for r in rows) for name in rows[0]} if rows else {}


def retrieval(
    stack: Stack,
    questions: Sequence[datasets.Question],
    *,
    dataset: str = "sample",
    k: int = 10,
    report: Report = quiet,
) -> dict[str, Any]:
    """Articles ranked by their first passage, per configuration, graded nDCG."""
    graded = [q for q in questions if q.answerable]
    configurations: dict[str, dict[str, float]] = {}
    failures: list[dict[str, Any]] = []
    for name, mode in CONFIGS.items():
        rows = []
        started = time.perf_counter()
        for i, q in enumerate(graded, start=1):
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
            if name == "hybrid" and mrr_at(ranked, q.relevant, 5) == 0:
                failures.append(
                    {"id": q.id, "question": q.question, "expected": q.relevant, "got": ranked[:5]}
                )
            report(f"retrieval {name}", i, len(graded))
        elapsed = time.perf_counter() - started
        configurations[name] = _mean(rows) | {
            "questions": len(rows),
            "ms_per_query": 1000 * elapsed / max(len(rows), 1),
        }
    return {
        "suite": "retrieval",
        "dataset": dataset,
        "configurations": configurations,
        "failures": failures,
    }


def _ask(stack: Stack, q: datasets.Question, audience: Audience | None = None) -> Answer:
    return stack.answers.answer(q.question, audience=audience or q.audience)


def article_chunks(stack: Stack) -> dict[str, list[str]]:
    """The live passages of every article, by article id."""
    out: dict[str, list[str]] = {}
    with Session(stack.engine) as session:
        for version_id, live in stack.retriever.catalog.live().items():
            out[live.article_id] = [c.text for c in service.chunks_of(session, version_id)]
    return out


def references(q: datasets.Question, chunks: dict[str, list[str]]) -> tuple[str, list[str]]:
    """(reference answer, reference contexts) for ragas: the passages of the grade-2
    articles holding a golden fact, and the sentences in them that state one."""
    facts = [f.lower() for f in q.answer_contains]
    contexts = [
        text
        for article, grade in q.relevant.items()
        if grade == 2
        for text in chunks.get(article, [])
        if any(f in text.lower() for f in facts)
    ]
    stated = [s for c in contexts for s in sentences(c) if any(f in s.lower() for f in facts)]
    return " ".join(dict.fromkeys(stated)) or " ".join(q.answer_contains), contexts


def answers(
    stack: Stack,
    questions: Sequence[datasets.Question],
    *,
    dataset: str = "sample",
    report: Report = quiet,
    ragas: bool = True,
) -> dict[str, Any]:
    """Abstention, false abstention, citations, grounding and facts in served answers."""
    grounding = GroundingCheck()
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if q.category == "unanswerable"]
    failures: list[dict[str, Any]] = []
    abstained_right = abstained_wrong = 0
    cited_relevant = cited_total = sentences = unsupported = facts_found = facts_asked = 0
    samples: list[dict[str, Any]] = []
    chunks = article_chunks(stack) if ragas else {}
    total = len(answerable) + len(unanswerable)
    for i, q in enumerate([*answerable, *unanswerable], start=1):
        answer = _ask(stack, q)
        report("answers", i, total)
        got = dedupe([p.article_id for p in answer.passages])[:5]
        if q.category == "unanswerable":
            abstained_right += answer.abstained
            if not answer.abstained:
                failures.append(_failure(q, got, "answered an unanswerable question", answer))
            continue
        if answer.abstained:
            abstained_wrong += 1
            failures.append(_failure(q, got, f"abstained ({answer.abstain_reason})", answer))
            continue
        cited = [s.passage.article_id for s in answer.sentences]
        cited_relevant += round(citation_precision(cited, q.relevant) * len(cited))
        cited_total += len(cited)
        sentences += len(answer.sentences)
        unsupported += sum(
            not grounding.support(s.text, s.passage.text).supported for s in answer.sentences
        )
        if q.answer_contains:
            facts_asked += 1
            facts_found += all(f.lower() in answer.text.lower() for f in q.answer_contains)
        reference, contexts = references(q, chunks)
        samples.append(
            {
                "user_input": q.question,
                "response": answer.text,
                "reference": reference,
                "retrieved_contexts": [p.text for p in answer.passages],
                "reference_contexts": contexts,
            }
        )
    metrics: dict[str, float] = {
        "abstention_accuracy": abstained_right / max(len(unanswerable), 1),
        "false_abstention_rate": abstained_wrong / max(len(answerable), 1),
        "citation_precision": cited_relevant / max(cited_total, 1),
        "unsupported_sentence_rate": unsupported / max(sentences, 1),
        "unsupported_sentences": unsupported,
        "facts_in_answer": facts_found / max(facts_asked, 1),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "min_relevance": stack.answers.min_relevance,
    }
    notes: list[str] = []
    if ragas:
        from evals.ragas_metrics import score

        embed = stack.retriever.embedder.embed_query
        metrics |= score(samples, report=report, embed_query=embed, notes=notes)
    return {
        "suite": "answers",
        "dataset": dataset,
        "configurations": {"hybrid": metrics},
        "failures": failures,
        "notes": notes,
    }


def _failure(q: datasets.Question, got: list[str], why: str, answer: Answer) -> dict[str, Any]:
    return {
        "id": q.id,
        "question": q.question,
        "why": why,
        "expected": q.relevant,
        "got": got,
        "answer": answer.text,
    }


def staff_articles(stack: Stack) -> set[str]:
    live = stack.retriever.catalog.live().values()
    return {v.article_id for v in live if v.audience == Audience.staff}


def retire(stack: Stack, article_ids: Sequence[str]) -> None:
    admin = Actor("eval-admin", frozenset({Role.admin}))
    with Session(stack.engine, expire_on_commit=False) as session:
        for article_id in article_ids:
            service.retire(session, article_id, admin, "safety eval: retired probe", stack.sync)


def retired_targets(questions: Sequence[datasets.Question]) -> list[str]:
    return sorted({a for q in questions if q.category == "retired" for a in q.relevant})


def safety(
    stack: Stack,
    questions: Sequence[datasets.Question],
    *,
    dataset: str = "sample",
    retire_stack: Stack | None = None,
    report: Report = quiet,
) -> dict[str, Any]:
    """Counts that must stay zero (leaks, retired or superseded citations, unsupported
    sentences) and escalation recall. `retire_stack` is a separate scratch index in
    which the `retired` articles get retired; without it those probes are not run."""
    grounding = GroundingCheck()
    staff = staff_articles(stack)
    failures: list[dict[str, Any]] = []
    leaks = unsupported = superseded = 0
    patient_probes = list(questions)  # every question, asked as a patient
    for i, q in enumerate(patient_probes, start=1):
        report("safety: leaks", i, len(patient_probes))
        passages = stack.retriever.search(q.question, audience=Audience.patient, top_k=20)
        answer = _ask(stack, q, Audience.patient)
        leaked = ({p.article_id for p in passages} | _cited(answer)) & staff
        leaks += len(leaked)
        if leaked:
            failures.append(
                {
                    "id": q.id,
                    "question": q.question,
                    "why": "staff leak",
                    "expected": {},
                    "got": sorted(leaked),
                }
            )
        bad = [
            s for s in answer.sentences if not grounding.support(s.text, s.passage.text).supported
        ]
        unsupported += len(bad)
        old = _superseded(stack, answer)
        superseded += len(old)
        if bad or old:
            failures.append(
                {
                    "id": q.id,
                    "question": q.question,
                    "why": "unsupported sentence" if bad else "superseded version cited",
                    "expected": q.relevant,
                    "got": [s.text for s in bad] or old,
                }
            )
    urgent = [q for q in questions if q.escalate]
    escalated = 0
    for q in urgent:
        answer = _ask(stack, q)
        escalated += answer.escalate
        if not answer.escalate:
            failures.append(
                {
                    "id": q.id,
                    "question": q.question,
                    "why": "not escalated",
                    "expected": {},
                    "got": [],
                }
            )
    metrics: dict[str, float] = {
        "staff_leaks": leaks,
        "superseded_citations": superseded,
        "unsupported_sentences": unsupported,
        "escalation_recall": escalated / max(len(urgent), 1),
        "urgent": len(urgent),
        "probes": len(patient_probes),
    }
    if retire_stack is not None:
        metrics |= _retired_probes(retire_stack, questions, failures)
    return {
        "suite": "safety",
        "dataset": dataset,
        "configurations": {"hybrid": metrics},
        "failures": failures,
    }


def _cited(answer: Answer) -> set[str]:
    return {s.passage.article_id for s in answer.sentences}


def _superseded(stack: Stack, answer: Answer) -> list[str]:
    live = stack.retriever.catalog.live()
    return sorted(
        f"{s.passage.article_id} v{s.passage.version}"
        for s in answer.sentences
        if s.passage.version_id not in live
    )


def _retired_probes(
    stack: Stack, questions: Sequence[datasets.Question], failures: list[dict[str, Any]]
) -> dict[str, float]:
    targets = retired_targets(questions)
    retire(stack, targets)
    probes = [q for q in questions if set(q.relevant) & set(targets)]
    cited = 0
    for q in probes:
        passages = stack.retriever.search(q.question, audience=q.audience, top_k=20)
        answer = _ask(stack, q)
        found = ({p.article_id for p in passages} | _cited(answer)) & set(targets)
        cited += len(found)
        if found:
            failures.append(
                {
                    "id": q.id,
                    "question": q.question,
                    "why": "retired article served",
                    "expected": q.relevant,
                    "got": sorted(found),
                }
            )
    return {
        "retired_citations": cited,
        "retired_probes": len(probes),
        "retired_articles": len(targets),
    }
