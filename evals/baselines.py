"""MedQuAD side by side: BM25, dense, hybrid (+ rerank), and a naive LlamaIndex pipeline.

The index is built once into a persistent home (`<home>/corpus`, Canon's SQLite and
Qdrant Edge shard, `<home>/llamaindex`) and reused, so tuning on dev never re-embeds.

Relevance is at the passage level (one passage = one QA answer = one `## question`
section). A Canon chunk maps to `article_id#section_key(section path)`; a LlamaIndex
node maps to the `## ` section its character span overlaps most. Ranked chunks are
deduplicated by passage, first occurrence kept, before scoring.

Abstention set: every document whose Focus falls in the held-out bucket is left out
of the corpus (all sources with that Focus, so a GHR and a MedlinePlus page on the
same condition leave together); their questions must abstain.
"""

import hashlib
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from evals import medquad
from evals.metrics import dedupe, mrr_at, ndcg_at, recall_at
from evals.naive import NaiveIndex
from evals.progress import Report, quiet
from evals.runner import Stack, StackFactory
from governance import service
from governance.models import Audience, Status
from governance.service import Actor, Role
from ingest.pipeline import ingest
from retrieval.answer import AnswerService
from retrieval.grounding import GroundingCheck
from retrieval.store import Mode
from retrieval.text import content_terms

HOLDOUT_BUCKETS = 20  # 1 in 20 Focus topics is left out of the corpus
CANON_CONFIGS: dict[str, Mode] = {"bm25": "sparse", "dense": "dense", "hybrid": "hybrid"}
NAIVE = "llamaindex-naive"
RERANK = "hybrid+rerank"
NAIVE_SPANS = "llamaindex-naive (spans)"  # a node credits every passage it overlaps


def focus_key(doc: medquad.MedDoc) -> str:
    return medquad.section_key(doc.focus)


def held_out(doc: medquad.MedDoc) -> bool:
    digest = hashlib.sha1(f"holdout:{focus_key(doc)}".encode()).hexdigest()
    return int(digest, 16) % HOLDOUT_BUCKETS == 0


@dataclass
class Bench:
    home: Path
    docs: list[medquad.MedDoc]  # all loaded documents, held-out ones included
    stack: Stack
    naive: NaiveIndex | None

    @property
    def corpus_docs(self) -> list[medquad.MedDoc]:
        return [d for d in self.docs if not held_out(d)]

    def close(self) -> None:
        self.stack.close()


def _publish(stack: Stack, corpus: Path, total: int, report: Report) -> None:
    done = 0

    def on_file(_: object) -> None:
        nonlocal done
        done += 1
        report("ingest", done, total)

    ingest(stack.engine, [corpus], author="medquad-eval", submit=True, on_file=on_file)
    actor = Actor(
        "medquad-eval-reviewer (automated, not a human review)",
        frozenset({Role.reviewer, Role.clinical_reviewer}),
    )
    with Session(stack.engine, expire_on_commit=False) as session:
        for version in service.versions_in(session, Status.in_review):
            assert version.id is not None
            service.approve(session, version.id, actor)
        approved = [v.id for v in service.versions_in(session, Status.approved) if v.id]
        # as publish_paths does: embed every passage first in large batches, then publish
        # 200 versions per index write and transaction (one at a time took ~1 s each)
        stack.sync.warm(session, approved)
        for start in range(0, len(approved), 200):
            service.publish_many(session, approved[start : start + 200], actor, stack.sync)
            report("embed + index (Canon)", min(start + 200, len(approved)), len(approved))


def open_bench(
    home: Path,
    make_stack: StackFactory,
    *,
    limit: int | None = None,
    naive: bool = True,
    report: Report = quiet,
) -> Bench:
    """Write the corpus and build both indexes unless `home` already holds them."""
    docs = medquad.load_documents(limit=limit)
    kept = [d for d in docs if not held_out(d)]
    corpus = home / "corpus"
    medquad.write_corpus(corpus, kept)
    stack = make_stack(home)
    live = {v.article_id for v in stack.retriever.catalog.live().values()}
    if not {d.article_id for d in kept} <= live:
        _publish(stack, corpus, len(kept), report)
    index = None
    if naive:
        articles = [(d.article_id, medquad.article_body(d)) for d in kept]
        index = NaiveIndex.open(
            home / "llamaindex",
            articles,
            stack.retriever.embedder,
            on_progress=lambda done, total: report("embed + index (LlamaIndex)", done, total),
        )
    return Bench(home, docs, stack, index)


def sample_questions(
    qs: Sequence[medquad.MedQuestion], n: int | None, seed: str = "medquad"
) -> list[medquad.MedQuestion]:
    """A deterministic sample (by qid hash), so runs compare question for question."""
    ordered = sorted(qs, key=lambda q: hashlib.sha1(f"{seed}:{q.id}".encode()).hexdigest())
    return ordered[:n] if n is not None else ordered


def split_questions(
    bench: Bench, split: medquad.Split, n: int | None
) -> tuple[list[medquad.MedQuestion], list[medquad.MedQuestion]]:
    """(answerable, unanswerable) questions of one split."""
    in_split = [d for d in bench.docs if d.split == split]
    answerable = medquad.questions([d for d in in_split if not held_out(d)])
    unanswerable = medquad.questions([d for d in in_split if held_out(d)])
    return sample_questions(answerable, n), sample_questions(unanswerable, n)


def _scores(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    own = {k: 2 for k, g in relevant.items() if g == 2}
    articles = dedupe([key.split("#", 1)[0] for key in ranked])
    article = next(iter(own)).split("#", 1)[0]
    return {
        "recall@5": recall_at(ranked, relevant, 5),
        "recall@10": recall_at(ranked, relevant, 10),
        "answer@1": recall_at(ranked, own, 1),
        "answer@5": recall_at(ranked, own, 5),
        "mrr@10": mrr_at(ranked, own, 10),
        "ndcg@10": ndcg_at(ranked, relevant, 10),
        "article@1": float(bool(articles) and articles[0] == article),
    }


def run_retrieval(
    bench: Bench,
    split: medquad.Split,
    *,
    n: int | None = 2000,
    k: int = 10,
    fusion_ks: Sequence[int] = (),
    report: Report = quiet,
) -> dict[str, Any]:
    """Every configuration on the same questions; `fusion_ks` adds hybrid variants (dev)."""
    if fusion_ks and split == "test":
        raise ValueError("sweeps run on dev only: test numbers are reported, never tuned on")
    questions, _ = split_questions(bench, split, n)
    retriever = bench.stack.retriever
    base_k = retriever.fusion_k
    reranker = retriever.reranker  # on only for "hybrid+rerank", when one is configured
    configs: list[str] = [*CANON_CONFIGS, *(f"hybrid k={fk}" for fk in fusion_ks)]
    if reranker is not None:
        configs.append(RERANK)
    if bench.naive is not None:
        configs.extend([NAIVE, NAIVE_SPANS])
    rows: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    seconds: dict[str, float] = dict.fromkeys(configs, 0.0)
    failures: list[dict[str, Any]] = []
    for i, q in enumerate(questions, start=1):
        retriever.embedder.embed_query(q.question)  # one embedding, shared by every config
        for config in configs:
            started = time.perf_counter()
            if config == NAIVE:
                assert bench.naive is not None
                hits = bench.naive.search(q.question, top_k=k * 2)
                ranked = dedupe([medquad.passage_key(h.article_id, h.section) for h in hits])
            elif config == NAIVE_SPANS:
                ranked = dedupe(
                    [medquad.passage_key(h.article_id, s) for h in hits for s in h.sections]
                )
            else:
                mode = CANON_CONFIGS.get(config, "hybrid")
                retriever.reranker = reranker if config == RERANK else None
                retriever.fusion_k = int(config.split("=")[1]) if "k=" in config else base_k
                passages = retriever.search(
                    q.question, audience=Audience.patient, top_k=k * 2, mode=mode
                )
                ranked = dedupe([medquad.passage_key(p.article_id, p.section) for p in passages])
            seconds[config] += time.perf_counter() - started
            scores = _scores(ranked[:k], q.relevant)
            rows[config].append(scores)
            if config == "hybrid" and scores["answer@5"] == 0 and len(failures) < 200:
                failures.append(
                    {
                        "id": q.id,
                        "question": q.question,
                        "expected": [medquad.passage_key(q.article_id, q.heading)],
                        "got": ranked[:5],
                    }
                )
        report(f"retrieval ({split})", i, len(questions))
    retriever.fusion_k, retriever.reranker = base_k, reranker
    configurations = {
        c: {name: statistics.fmean(r[name] for r in rows[c]) for name in rows[c][0]}
        | {"questions": len(rows[c]), "ms_per_query": 1000 * seconds[c] / len(rows[c])}
        for c in configs
        if rows[c]
    }
    return {
        "suite": "retrieval",
        "dataset": "medquad",
        "split": split,
        "fusion_k": base_k,
        "overfetch": retriever.overfetch,
        "configurations": configurations,
        "not_run": {}
        if reranker is not None
        else {RERANK: "no reranker configured (CANON_RERANK_MODEL unset; no weights here)"},
        "failures": failures,
        "corpus": {
            "articles": len(bench.corpus_docs),
            "held_out_articles": len(bench.docs) - len(bench.corpus_docs),
        },
        "attribution": medquad.ATTRIBUTION,
    }


def run_answers(
    bench: Bench,
    split: medquad.Split,
    *,
    n: int | None = 1000,
    min_relevance: float | None = None,
    min_coverage: float | None = None,
    sweep: Sequence[float] = (),
    report: Report = quiet,
) -> dict[str, Any]:
    """Abstention on held-out questions, false abstention, citations and grounding.

    `min_coverage` measures a candidate rule offline: also abstain when less than
    that share of the question's content terms appear in the best passage (with its
    title and section). The sweep crosses cosine thresholds with coverage thresholds.
    """
    if sweep and split == "test":
        raise ValueError("sweeps run on dev only: test numbers are reported, never tuned on")
    answerable, unanswerable = split_questions(bench, split, n)
    threshold = bench.stack.answers.min_relevance if min_relevance is None else min_relevance
    # A sweep answers once with no threshold and applies each one afterwards (an
    # approximation: the composer's pool can differ slightly); a plain run is exact.
    service_ = AnswerService(bench.stack.retriever, min_relevance=0.0 if sweep else threshold)
    grounding = GroundingCheck()
    records: list[dict[str, Any]] = []
    total = len(answerable) + len(unanswerable)
    for i, (q, expect) in enumerate(
        [(q, True) for q in answerable] + [(q, False) for q in unanswerable], start=1
    ):
        answer = service_.answer(q.question, audience=Audience.patient)
        top = max((p.relevance for p in answer.passages), default=0.0)
        asked = content_terms(q.question)
        best = max(answer.passages, key=lambda p: p.relevance, default=None)
        seen = content_terms(f"{best.title} {best.section} {best.text}") if best else set()
        coverage = len(asked & seen) / len(asked) if asked else 0.0
        cited = [s.passage.article_id for s in answer.sentences]
        records.append(
            {
                "id": q.id,
                "question": q.question,
                "answerable": expect,
                "top_relevance": top,
                "coverage": coverage,
                "abstained_at_0": answer.abstained,
                "cited_right": sum(a == q.article_id for a in cited),
                "cited": len(cited),
                "unsupported": sum(
                    not grounding.support(s.text, s.passage.text).supported
                    for s in answer.sentences
                ),
                "expected": q.article_id,
                "got": dedupe([p.article_id for p in answer.passages])[:3],
            }
        )
        report(f"answers ({split})", i, total)

    def abstains_at(r: dict[str, Any], t: float, c: float | None) -> bool:
        low = c is not None and r["coverage"] < c
        return bool(r["abstained_at_0"] or r["top_relevance"] < t or low)

    def at(t: float, c: float | None = None) -> dict[str, float | None]:
        abstains = [abstains_at(r, t, c) for r in records]
        yes = [a for a, r in zip(abstains, records, strict=True) if not r["answerable"]]
        no = [a for a, r in zip(abstains, records, strict=True) if r["answerable"]]
        return {
            "min_relevance": t,
            "min_coverage": c,
            "abstention_accuracy": statistics.fmean(yes) if yes else 0.0,
            "false_abstention_rate": statistics.fmean(no) if no else 0.0,
        }

    served = [r for r in records if not (r["abstained_at_0"] or r["top_relevance"] < threshold)]
    cited = sum(r["cited"] for r in served if r["answerable"])
    result = at(threshold, min_coverage) | {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "citation_precision": (
            sum(r["cited_right"] for r in served if r["answerable"]) / cited if cited else 0.0
        ),
        "unsupported_sentences": sum(r["unsupported"] for r in served),
    }
    failures = [r for r in records if abstains_at(r, threshold, min_coverage) == r["answerable"]][
        :200
    ]
    return {
        "suite": "answers",
        "dataset": "medquad",
        "split": split,
        "configurations": {"hybrid": result},
        "sweep": [at(t, c) for t in sweep for c in (None, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)],
        "failures": failures,
        "attribution": medquad.ATTRIBUTION,
    }
