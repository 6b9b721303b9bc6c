"""The relevance model's figures, side by side in one run (issue 31).

- **Consumer devtest** (`evals/consumer.py`): nDCG@10 / MRR@10 of BM25, dense, today's
  hybrid and hybrid top-`depth` reranked by the model (int8, and the fp32 graph when
  given, so what quantisation costs is measured on the same questions).
- **MedQuAD dev-val** (`devval` documents, never trained on; the shipped int8 graph),
  over the same index: hybrid against hybrid reranked, graded as `canon eval retrieval
  --dataset medquad` grades (own answer 2, same document 1).
- **Sample corpus abstention** (`evals/datasets/sample.jsonl`, never trained on): ROC AUC
  of the best passage's score for answerable against unanswerable questions, for the
  model's probability and for the dense cosine.
- **int8 vs fp32 agreement**: mean Spearman correlation of the two graphs' scores over
  each devtest question's hybrid candidates.
"""

import hashlib
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals import consumer, datasets, medquad
from evals.baselines import held_out, sample_questions
from evals.metrics import dedupe, mrr_at, ndcg_at
from evals.progress import Report, quiet
from evals.runner import Stack, StackFactory, publish_sample
from governance.models import Audience
from retrieval.rerank import Reranker, pair_text

DEVVAL_BUCKETS = 10


def devval(doc: medquad.MedDoc) -> bool:
    """MedQuAD dev-val: about a tenth of the dev documents (by a hash of the file), never
    trained on (`training.relevance.data` skips them)."""
    digest = hashlib.sha1(f"devval:{doc.file}".encode()).hexdigest()
    return doc.split == "dev" and int(digest, 16) % DEVVAL_BUCKETS == 0


def _ranked(retriever: Any, question: str, reranker: Reranker | None, k: int = 10) -> list[str]:
    retriever.reranker = reranker
    passages = retriever.search(question, audience=Audience.patient, top_k=k * 2)
    return dedupe([medquad.passage_key(p.article_id, p.section) for p in passages])[:k]


def medquad_devval(
    cb: consumer.ConsumerBench,
    rerankers: dict[str, Reranker | None],
    *,
    n: int = 500,
    report: Report = quiet,
) -> dict[str, Any]:
    docs = [d for d in cb.bench.docs if devval(d) and not held_out(d)]
    questions = sample_questions(medquad.questions(docs), n, seed="devval")
    retriever = cb.bench.stack.retriever
    kept = retriever.reranker
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in rerankers}
    try:
        for i, q in enumerate(questions, 1):
            own = {k: 2 for k, g in q.relevant.items() if g == 2}
            for name, reranker in rerankers.items():
                ranked = _ranked(retriever, q.question, reranker)
                rows[name].append((ndcg_at(ranked, q.relevant, 10), mrr_at(ranked, own, 10)))
            report("MedQuAD dev-val", i, len(questions))
    finally:
        retriever.reranker = kept
    return {
        name: {
            "ndcg@10": statistics.fmean(r[0] for r in rs),
            "mrr@10": statistics.fmean(r[1] for r in rs),
            "questions": len(rs),
        }
        for name, rs in rows.items()
        if rs
    }


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney)."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def sample_abstention(
    stack: Stack,
    rerankers: dict[str, Reranker],
    *,
    depth: int = 30,
    report: Report = quiet,
) -> dict[str, Any]:
    """Best score among the hybrid top-`depth` of each answerable and unanswerable sample
    question: the model's probability (per graph) and the dense cosine. The sample corpus
    is published into `stack` first when it holds nothing."""
    if not stack.retriever.catalog.live():
        publish_sample(stack)
    retriever = stack.retriever
    kept, retriever.reranker = retriever.reranker, None
    try:
        questions = [
            q
            for q in datasets.load("sample")
            if q.category == "unanswerable" or (q.answerable and q.category == "answerable")
        ]
        best: dict[str, dict[bool, list[float]]] = {
            name: {True: [], False: []} for name in ("dense cosine", *rerankers)
        }
        examples: list[dict[str, Any]] = []
        for i, q in enumerate(questions, 1):
            passages = retriever.search(q.question, audience=q.audience, top_k=depth)
            texts = [pair_text(p) for p in passages]
            answerable = q.category == "answerable"
            best["dense cosine"][answerable].append(max((p.relevance for p in passages), default=0))
            for name, reranker in rerankers.items():
                scores = reranker.scores(q.question, texts) if texts else []  # type: ignore[attr-defined]
                top = max(scores, default=0.0)
                best[name][answerable].append(top)
                if name == "int8" and not answerable and top >= 0.5 and len(examples) < 10:
                    at = int(np.argmax(scores))
                    examples.append(
                        {"question": q.question, "best": round(top, 3), "passage": texts[at][:160]}
                    )
            report("sample abstention", i, len(questions))
    finally:
        retriever.reranker = kept
    return {
        name: {
            "roc_auc": roc_auc(by[True], by[False]),
            "answerable": len(by[True]),
            "unanswerable": len(by[False]),
            "answerable_median": statistics.median(by[True]),
            "unanswerable_median": statistics.median(by[False]),
        }
        for name, by in best.items()
    } | {"unanswerable_scored_high (int8 >= 0.5)": examples}


def agreement(
    cb: consumer.ConsumerBench, a: Reranker, b: Reranker, *, depth: int = 30
) -> dict[str, float]:
    """Mean Spearman correlation of two graphs' scores over each devtest question's
    hybrid candidates (ties are rare with float scores: plain rank correlation)."""
    retriever = cb.bench.stack.retriever
    kept, retriever.reranker = retriever.reranker, None
    rhos = []
    try:
        for q in [q for q in cb.questions if q.split == "devtest"]:
            passages = retriever.search(q.text, audience=Audience.patient, top_k=depth)
            texts = [pair_text(p) for p in passages]
            if len(texts) < 3:
                continue
            ra = np.argsort(np.argsort(a.scores(q.text, texts)))  # type: ignore[attr-defined]
            rb = np.argsort(np.argsort(b.scores(q.text, texts)))  # type: ignore[attr-defined]
            rhos.append(float(np.corrcoef(ra, rb)[0, 1]))
    finally:
        retriever.reranker = kept
    return {"spearman_mean": statistics.fmean(rhos), "questions": len(rhos)}


def run(
    cb: consumer.ConsumerBench,
    sample_home: Path,
    make_stack: StackFactory,
    int8: Reranker,
    fp32: Reranker | None = None,
    *,
    depth: int = 30,
    devval_questions: int = 300,
    report: Report = quiet,
) -> dict[str, Any]:
    retriever = cb.bench.stack.retriever
    retriever.rerank_depth = depth
    graphs: dict[str, Reranker] = {"int8": int8} | ({"fp32": fp32} if fp32 else {})
    out: dict[str, Any] = {"depth": depth, "consumer_devtest": {}}
    for name, model in graphs.items():
        retriever.reranker = model
        result = consumer.run(cb, "devtest", report=report)
        out["consumer_devtest"][name] = result["configurations"]
    retriever.reranker = None
    # dev-val and the sample corpus with the shipped graph only: fp32's cost is measured
    # on the devtest questions and by the agreement of the two graphs' scores
    out["medquad_devval"] = medquad_devval(
        cb, {"hybrid": None, "int8": int8}, n=devval_questions, report=report
    )
    stack = make_stack(sample_home)
    try:
        out["sample_abstention"] = sample_abstention(
            stack, {"int8": int8}, depth=depth, report=report
        )
    finally:
        stack.close()
    if fp32 is not None:
        out["int8_vs_fp32"] = agreement(cb, int8, fp32, depth=depth)
    return out


def fusion_sweep(
    cb: consumer.ConsumerBench,
    weights: Sequence[float] = (1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.0),
    *,
    devval_questions: int = 300,
    report: Report = quiet,
) -> dict[str, Any]:
    """nDCG@10 / MRR@10 of the hybrid query with the BM25 list weighted `w` against the
    dense list's 1 (weighted RRF), on the consumer devtest and MedQuAD dev-val questions,
    without a reranker: the dev sets that choose `CANON_SPARSE_WEIGHT`."""
    retriever = cb.bench.stack.retriever
    kept = retriever.reranker, retriever.sparse_weight
    retriever.reranker = None
    consumer_qs = [q for q in cb.questions if q.split == "devtest"]
    graded = [consumer.grades(q, cb.passages) for q in consumer_qs]
    docs = [d for d in cb.bench.docs if devval(d) and not held_out(d)]
    med_qs = sample_questions(medquad.questions(docs), devval_questions, seed="devval")
    out: dict[str, Any] = {}
    try:
        for step, w in enumerate(weights, 1):
            retriever.sparse_weight = w
            rows = [
                consumer.scores(_ranked(retriever, q.text, None), g, q.passage_keys())
                for q, g in zip(consumer_qs, graded, strict=True)
            ]
            med = []
            for q in med_qs:
                ranked = _ranked(retriever, q.question, None)
                own = {k: 2 for k, g in q.relevant.items() if g == 2}
                med.append((ndcg_at(ranked, q.relevant, 10), mrr_at(ranked, own, 10)))
            out[f"{w:g}"] = {
                "consumer ndcg@10": statistics.fmean(r["ndcg@10"] for r in rows),
                "consumer mrr@10": statistics.fmean(r["mrr@10"] for r in rows),
                "medquad ndcg@10": statistics.fmean(m[0] for m in med),
                "medquad mrr@10": statistics.fmean(m[1] for m in med),
            }
            report("fusion weights", step, len(weights))
    finally:
        retriever.reranker, retriever.sparse_weight = kept
    return out
