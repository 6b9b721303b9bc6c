"""Retrieval on real patient wording: the consumer health questions over MedQuAD's passages.

Data: the training questions of the TREC 2017 LiveQA medical task (CITATION below), in
`../shared/data/consumer-questions/` (two XML files, 183 + 215 questions). The TREC
LiveQA *test* questions and judgements are never read here.

- **Question**: `<SUBJECT>` + `<MESSAGE>`, as the patient wrote them. Its id is
  `nlm<file number>-<id attribute>` (`questionid="Q1"` in file 1, `qid="1.0"` in file 2),
  so ids never collide across files.
- **Split**, by question: `sha1(id) % 5 == 0` -> "devtest" (never trained on), else "train".
- **Passages**: MedQuAD's (`evals/medquad.py`, the same corpus `canon eval retrieval
  --dataset medquad` builds) plus every consumer question's reference answers, one
  synthetic article per question (`consumer-<id>`, title = its first focus, one
  `## <focus>: <type>` section per answer).
- **Graded relevance** (`grades`), per question:
  - 2: its own reference answers, and any passage whose text is a copy of one (normalised
    words equal; MedQuAD holds some of them verbatim);
  - 2: a passage whose document focus matches a focus of one of the question's
    sub-questions and whose question type matches that *same* sub-question's type
    (MedQuAD types through `TYPE_MAP`; another consumer question's answers by their own
    annotated type);
  - 1: the same focus, another type;
  - 0: everything else.
  Focus match (`focus_keys`): lowercase words, possessive "'s" and apostrophes dropped,
  a plural "s" dropped from words of more than three letters (not "-ss", "-us", "-is"),
  a parenthesised part also matching on its own ("Rocky Mountain Spotted Fever (RMSF)"
  matches "rmsf"), and an annotated "anxiety/ depression" is two foci. Exact key match
  only: "amyloidosis" does not match "AL amyloidosis", and synonyms ("hypertension" /
  "High Blood Pressure") are not resolved, so grades 1 and 2 understate what is relevant.
- **Metrics** at 10 passages (ranked chunks deduplicated by passage, as for MedQuAD):
  graded nDCG@10 (gain 2^g - 1); MRR@10 of the first *relevant* passage (grade 2);
  `mrr@10 (partly)`: of the first passage with grade >= 1; `answer@10`: share of the
  question's own reference answers in the top 10.
"""

import hashlib
import json
import os
import re
import shutil
import statistics
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from evals import baselines, medquad
from evals.baselines import _publish as publish_corpus
from evals.metrics import dedupe, mrr_at, ndcg_at, recall_at
from evals.progress import Report, quiet
from evals.runner import StackFactory
from governance.models import Audience

ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(
    os.environ.get(
        "CANON_CONSUMER_QUESTIONS", ROOT.parent / "shared" / "data" / "consumer-questions"
    )
)
FILES = ("nlm-consumer-questions-1.xml", "nlm-consumer-questions-2.xml")
CITATION = (
    "Consumer health questions: the training questions of the TREC 2017 LiveQA medical task "
    '(Ben Abacha, Agichtein, Pinter & Demner-Fushman, "Overview of the Medical Question '
    'Answering Task at TREC 2017 LiveQA", TREC 2017); answers are excerpts of NLM and NIH pages.'
)
ARTICLE_PREFIX = "consumer-"
SERVICE_LINE = "consumer-answers"
DEVTEST_BUCKETS = 5

Split = Literal["devtest", "train"]
SPLITS: tuple[Split, ...] = ("devtest", "train")

# Consumer question type (the 23 of the LiveQA annotation, lowercased) -> the MedQuAD
# question types (`qtype`) that answer it. Judgement calls, documented:
# - drug questions (side effects ... ingredient) map to nothing: this MedQuAD copy has no
#   drug pages (its MedlinePlus drug subsets carry no answers), so a same-focus MedQuAD
#   passage can only be partly relevant to them;
# - "considerations" (NIDDK "What to do for X": diet and lifestyle) and "frequency"
#   ("How many people are affected") answer no consumer type fully;
# - "diagnose_me" (symptoms described, "what do I have?") takes symptoms and tests;
#   "association" ("is X linked to Y?") causes and complications; "organization"
#   (find a specialist, a group) support groups and research (clinical trials);
#   "resources" (where to read more) support groups and the overview.
TYPE_MAP: dict[str, tuple[str, ...]] = {
    "information": ("information",),
    "treatment": ("treatment",),
    "cause": ("causes", "genetic changes"),
    "prognosis": ("outlook",),
    "diagnosis": ("exams and tests",),
    "diagnose_me": ("symptoms", "exams and tests"),
    "symptom": ("symptoms",),
    "inheritance": ("inheritance",),
    "susceptibility": ("susceptibility",),
    "prevention": ("prevention",),
    "complication": ("complications",),
    "association": ("causes", "complications"),
    "organization": ("support groups", "research"),
    "resources": ("support groups", "information"),
    "side effects": (),
    "contraindication": (),
    "indication": (),
    "usage": (),
    "tapering": (),
    "dosage": (),
    "interaction": (),
    "storage and disposal": (),
    "ingredient": (),
}
# Every question type in the MedQuAD data here (16).
MEDQUAD_QTYPES = frozenset(
    {
        "information",
        "symptoms",
        "treatment",
        "inheritance",
        "frequency",
        "genetic changes",
        "causes",
        "exams and tests",
        "research",
        "outlook",
        "susceptibility",
        "considerations",
        "prevention",
        "stages",
        "complications",
        "support groups",
    }
)


@dataclass(frozen=True)
class SubQuestion:
    foci: tuple[str, ...]
    types: tuple[str, ...]  # lowercased
    answers: tuple[str, ...]


@dataclass(frozen=True)
class ConsumerQuestion:
    id: str  # `nlm<file>-<id attribute>`: decides the split
    text: str  # subject + message, as the patient wrote them
    split: Split
    foci: tuple[str, ...]  # every sub-question's, in order, without repeats
    types: tuple[str, ...]
    answers: tuple[str, ...]  # the reference answers, in order
    subquestions: tuple[SubQuestion, ...] = field(default=(), repr=False)

    @property
    def article_id(self) -> str:
        return ARTICLE_PREFIX + re.sub(r"[^a-z0-9]+", "-", self.id.lower()).strip("-")

    @property
    def title(self) -> str:
        return self.foci[0] if self.foci else self.id

    def sections(self) -> list[tuple[str, str, SubQuestion]]:
        """(heading, answer, its sub-question) per reference answer; headings unique."""
        out: list[tuple[str, str, SubQuestion]] = []
        seen: dict[str, int] = {}
        for sub in self.subquestions:
            base = f"{sub.foci[0] if sub.foci else self.title}: {', '.join(sub.types)}"
            for answer in sub.answers:
                key = medquad.section_key(base)
                seen[key] = seen.get(key, 0) + 1
                out.append((base if seen[key] == 1 else f"{base} ({seen[key]})", answer, sub))
        return out

    def passage_keys(self) -> list[str]:
        return [medquad.passage_key(self.article_id, h) for h, _, _ in self.sections()]


def missing_reason(root: Path | None = None) -> str | None:
    """None when both files are there; otherwise the message to skip with."""
    root = DATA_ROOT if root is None else root
    if not all((root / name).is_file() for name in FILES):
        return f"skipped: {root} not found (consumer questions live in ../shared/data)"
    return None


def split_of(question_id: str) -> Split:
    digest = int(hashlib.sha1(question_id.encode()).hexdigest(), 16)
    return "devtest" if digest % DEVTEST_BUCKETS == 0 else "train"


def _text(node: ET.Element | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def parse_file(path: Path, prefix: str) -> list[ConsumerQuestion]:
    """One file's questions; parsed from bytes, so a byte-order mark is harmless."""
    root = ET.fromstring(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    out: list[ConsumerQuestion] = []
    for node in root.iter("NLM-QUESTION"):
        raw_id = node.get("questionid") or node.get("qid")
        if not raw_id:
            raise ValueError(f"{path}: an NLM-QUESTION without questionid/qid")
        qid = f"{prefix}-{raw_id}"
        subject, message = _text(node.find("SUBJECT")), _text(node.find("MESSAGE"))
        subs = tuple(
            SubQuestion(
                foci=_unique(" ".join(_text(f).split()) for f in sub.iter("FOCUS")),
                types=_unique(_text(t).lower() for t in sub.iter("TYPE")),
                answers=tuple(a for n in sub.iter("ANSWER") if (a := _text(n))),
            )
            for sub in node.iter("SUB-QUESTION")
        )
        out.append(
            ConsumerQuestion(
                id=qid,
                text="\n".join(p for p in (subject, message) if p),
                split=split_of(qid),
                foci=_unique(f for s in subs for f in s.foci),
                types=_unique(t for s in subs for t in s.types),
                answers=tuple(a for s in subs for a in s.answers),
                subquestions=subs,
            )
        )
    return out


def load_questions(
    root: Path | None = None, *, split: Split | None = None, limit: int | None = None
) -> list[ConsumerQuestion]:
    """Both files in order. `limit` keeps the first N of a stable hash order (both splits)."""
    root = DATA_ROOT if root is None else root
    reason = missing_reason(root)
    if reason is not None:
        raise FileNotFoundError(reason)
    qs = [q for i, name in enumerate(FILES, 1) for q in parse_file(root / name, f"nlm{i}")]
    if limit is not None:
        ordered = sorted(qs, key=lambda q: hashlib.sha1(b"subset:" + q.id.encode()).digest())
        keep = {q.id for q in ordered[:limit]}
        qs = [q for q in qs if q.id in keep]
    if split is not None:
        qs = [q for q in qs if q.split == split]
    return qs


# --- relevance -----------------------------------------------------------------------

_PAREN = re.compile(r"\(([^)]*)\)")


def _words(text: str) -> str:
    text = re.sub(r"['’`]s\b", "", text.lower()).replace("'", "").replace("’", "")
    words = re.findall(r"[a-z0-9]+", text)
    return " ".join(
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")) else w
        for w in words
    )


def focus_keys(focus: str) -> frozenset[str]:
    """The normalised keys a focus matches on (see the module docstring)."""
    keys: set[str] = set()
    for part in re.split(r"[/;]", focus):
        for piece in (_PAREN.sub(" ", part), *_PAREN.findall(part)):
            if key := _words(piece):
                keys.add(key)
    return frozenset(keys)


def text_key(text: str) -> str:
    """Normalised words of a passage: equal keys mean the same text."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _kinds(consumer_types: Iterable[str]) -> frozenset[str]:
    """What a consumer type accepts: itself (other reference answers) and MedQuAD's types."""
    out: set[str] = set()
    for t in consumer_types:
        out.add(f"consumer:{t}")
        out.update(f"medquad:{m}" for m in TYPE_MAP.get(t, ()))
    return frozenset(out)


@dataclass(frozen=True)
class PassageInfo:
    key: str  # `article_id#section_key(heading)`, what a ranked chunk maps to
    foci: frozenset[str]  # focus keys of its document
    kinds: frozenset[str]  # its question type(s): `medquad:<qtype>` or `consumer:<type>`
    text: str  # text_key of its text


class PassageIndex:
    """The indexed passages, looked up by focus key and by text."""

    def __init__(self, passages: Iterable[PassageInfo]) -> None:
        self.by_focus: dict[str, list[PassageInfo]] = defaultdict(list)
        self.by_text: dict[str, list[str]] = defaultdict(list)
        self.size = 0
        for p in passages:
            self.size += 1
            for f in p.foci:
                self.by_focus[f].append(p)
            self.by_text[p.text].append(p.key)

    @classmethod
    def build(
        cls, docs: Iterable[medquad.MedDoc], questions: Iterable[ConsumerQuestion]
    ) -> "PassageIndex":
        def rows() -> Iterable[PassageInfo]:
            for doc in docs:
                foci = focus_keys(doc.focus)
                for p in doc.pairs:
                    yield PassageInfo(
                        medquad.passage_key(doc.article_id, p.heading),
                        foci,
                        frozenset({f"medquad:{p.qtype.lower()}"}),
                        text_key(p.answer),
                    )
            for q in questions:
                for heading, answer, sub in q.sections():
                    yield PassageInfo(
                        medquad.passage_key(q.article_id, heading),
                        frozenset(k for f in (sub.foci or (q.title,)) for k in focus_keys(f)),
                        frozenset(f"consumer:{t}" for t in sub.types),
                        text_key(answer),
                    )

        return cls(rows())


def grades(q: ConsumerQuestion, index: PassageIndex) -> dict[str, int]:
    """Passage key -> grade (2 relevant, 1 partly relevant) for one question."""
    out: dict[str, int] = {}

    def give(key: str, grade: int) -> None:
        out[key] = max(out.get(key, 0), grade)

    for sub in q.subquestions:
        accepted = _kinds(sub.types)
        for f in {k for focus in sub.foci for k in focus_keys(focus)}:
            for p in index.by_focus.get(f, ()):
                give(p.key, 2 if p.kinds & accepted else 1)
    for answer in q.answers:
        for key in index.by_text.get(text_key(answer), ()):
            give(key, 2)
    for key in q.passage_keys():
        give(key, 2)
    return out


def scores(
    ranked: Sequence[str], relevant: Mapping[str, int], own: Sequence[str]
) -> dict[str, float]:
    """One question's metrics over its ranked passage keys (deduplicated, cut at 10)."""
    relevant_only = {k: g for k, g in relevant.items() if g >= 2}
    return {
        "ndcg@10": ndcg_at(ranked, relevant, 10),
        "mrr@10": mrr_at(ranked, relevant_only, 10),
        "mrr@10 (partly)": mrr_at(ranked, relevant, 10),
        "answer@10": recall_at(ranked, dict.fromkeys(own, 2), 10),
    }


# --- the reference answers as articles -----------------------------------------------


def article_markdown(q: ConsumerQuestion, *, last_reviewed: date = date(2026, 11, 1)) -> str:
    front = [
        "---",
        f"id: {q.article_id}",
        f"title: {json.dumps(q.title)}",
        f"owner: {json.dumps('TREC 2017 LiveQA training answers (NLM)')}",
        f"service_line: {SERVICE_LINE}",
        "audience: patient",
        "review_every_days: 3650",
        f"last_reviewed: {last_reviewed.isoformat()}",
        "clinical: true",
        'source_url: ""',
        "---",
        f"# {q.title}",
        "",
        "",
    ]
    body = [f"## {h}\n\n{medquad.answer_markdown(a)}\n" for h, a, _ in q.sections()]
    return "\n".join(front) + "\n".join(body)


def write_corpus(out_dir: Path, questions: Iterable[ConsumerQuestion]) -> int:
    """One Markdown file per question under `out_dir/consumer-answers/`; rewritten only
    when its text changes. Returns the count."""
    folder = out_dir / SERVICE_LINE
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for q in questions:
        path = folder / f"{q.article_id}.md"
        text = article_markdown(q)
        if not path.is_file() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
        count += 1
    (out_dir / "_ATTRIBUTION.md").write_text(f"# Attribution\n\n{CITATION}\n", "utf-8")
    return count


# --- the bench -----------------------------------------------------------------------


def seed_home(home: Path, medquad_home: Path | None) -> bool:
    """Copy a built MedQuAD home (not its LlamaIndex or chunker shards) into an empty
    `home`, so the reference answers are added to a copy and the MedQuAD home's own
    corpus stays as its figures were measured. The source must not be open elsewhere."""
    if medquad_home is None or (home / "canon.db").exists():
        return False
    if not (medquad_home / "canon.db").is_file() or home.resolve() == medquad_home.resolve():
        return False
    shutil.copytree(
        medquad_home,
        home,
        ignore=shutil.ignore_patterns("llamaindex", "chunkers"),
        dirs_exist_ok=True,
    )
    return True


@dataclass
class ConsumerBench:
    bench: baselines.Bench  # MedQuAD documents (held-out ones included) and the stack
    questions: list[ConsumerQuestion]  # every loaded question; all their answers indexed
    passages: PassageIndex
    seeded_from: Path | None = None

    def close(self) -> None:
        self.bench.close()


def open_bench(
    home: Path,
    make_stack: StackFactory,
    *,
    medquad_home: Path | None = None,
    limit: int | None = None,
    questions: list[ConsumerQuestion] | None = None,
    report: Report = quiet,
) -> ConsumerBench:
    """MedQuAD's corpus (copied from `medquad_home` when built there, else built here, as
    `canon eval retrieval --dataset medquad` builds it) plus the reference answers."""
    seeded = seed_home(home, medquad_home)
    bench = baselines.open_bench(home, make_stack, limit=limit, naive=False, report=report)
    try:
        qs = load_questions(limit=limit) if questions is None else questions
        corpus = home / "consumer-corpus"
        write_corpus(corpus, qs)
        live = {v.article_id for v in bench.stack.retriever.catalog.live().values()}
        if not {q.article_id for q in qs} <= live:
            publish_corpus(bench.stack, corpus, len(qs), report)
    except BaseException:
        bench.close()
        raise
    index = PassageIndex.build(bench.corpus_docs, qs)
    return ConsumerBench(bench, qs, index, medquad_home if seeded else None)


def sample(qs: Sequence[ConsumerQuestion], n: int | None) -> list[ConsumerQuestion]:
    ordered = sorted(qs, key=lambda q: hashlib.sha1(f"consumer:{q.id}".encode()).hexdigest())
    return ordered[:n] if n is not None else ordered


def run(
    cb: ConsumerBench,
    split: Split = "devtest",
    *,
    n: int | None = None,
    k: int = 10,
    report: Report = quiet,
) -> dict[str, Any]:
    """BM25, dense and hybrid (and hybrid+rerank when a reranker is configured) on one
    split's questions, scored as `canon eval retrieval --dataset medquad` ranks passages."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: devtest or train")
    questions = sample([q for q in cb.questions if q.split == split], n)
    retriever = cb.bench.stack.retriever
    reranker = retriever.reranker
    configs: list[str] = list(baselines.CANON_CONFIGS)
    if reranker is not None:
        configs.append(baselines.RERANK)
    rows: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    seconds = dict.fromkeys(configs, 0.0)
    failures: list[dict[str, Any]] = []
    graded = [grades(q, cb.passages) for q in questions]
    for i, (q, relevant) in enumerate(zip(questions, graded, strict=True), start=1):
        own = q.passage_keys()
        vector = retriever.embedder.embed_query(q.text)  # one embedding for every config
        for config in configs:
            started = time.perf_counter()
            retriever.reranker = reranker if config == baselines.RERANK else None
            passages = retriever.search(
                q.text,
                audience=Audience.patient,
                top_k=k * 2,
                mode=baselines.CANON_CONFIGS.get(config, "hybrid"),
                query_vector=vector,
            )
            ranked = dedupe([medquad.passage_key(p.article_id, p.section) for p in passages])[:k]
            seconds[config] += time.perf_counter() - started
            row = scores(ranked, relevant, own)
            rows[config].append(row)
            if config == "hybrid" and row["mrr@10"] == 0 and len(failures) < 200:
                failures.append(
                    {
                        "id": q.id,
                        "question": q.text[:300],
                        "foci": list(q.foci),
                        "types": list(q.types),
                        "expected": own,
                        "got": [f"{key} ({relevant.get(key, 0)})" for key in ranked[:5]],
                    }
                )
        report(f"consumer retrieval ({split})", i, len(questions))
    retriever.reranker = reranker
    configurations = {
        c: {m: statistics.fmean(r[m] for r in rows[c]) for m in rows[c][0]}
        | {"questions": len(rows[c]), "ms_per_query": 1000 * seconds[c] / len(rows[c])}
        for c in configs
        if rows[c]
    }
    with_medquad = sum(any(not k.startswith(ARTICLE_PREFIX) for k in g) for g in graded)
    n_relevant = [sum(v == 2 for v in g.values()) for g in graded]
    n_partly = [sum(v == 1 for v in g.values()) for g in graded]
    return {
        "suite": "retrieval",
        "dataset": "consumer",
        "split": split,
        "fusion_k": retriever.fusion_k,
        "overfetch": retriever.overfetch,
        "configurations": configurations,
        "not_run": {}
        if reranker is not None
        else {baselines.RERANK: "no reranker configured (CANON_RERANK_MODEL unset)"},
        "failures": failures,
        "corpus": {
            "medquad_articles": len(cb.bench.corpus_docs),
            "medquad_held_out_articles": len(cb.bench.docs) - len(cb.bench.corpus_docs),
            "reference_articles": len(cb.questions),
            "graded_passages": cb.passages.size,
            "questions": len(questions),
            "questions_with_a_medquad_passage_graded": with_medquad,
            "relevant_per_question_median": statistics.median(n_relevant) if graded else 0,
            "partly_relevant_per_question_median": statistics.median(n_partly) if graded else 0,
            "seeded_from": str(cb.seeded_from) if cb.seeded_from else None,
        },
        "notes": [CITATION, medquad.ATTRIBUTION],
    }
