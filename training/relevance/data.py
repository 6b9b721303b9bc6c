"""Training pairs for Canon's relevance model (a cross-encoder), built deterministically.

    python -m training.relevance.data [--home .canon-evals/consumer]
                                      [--out .train/relevance/pairs.jsonl]

Three sources, each (question, passage, label) with graded labels: 1 relevant, 0.5 partly
relevant, 0 not relevant.

- **MedQuAD dev** (CC BY 4.0): documents of the dev split that are indexed (not held out
  for abstention) and not in dev-val (`devval`, about a tenth, kept for evaluation). A
  question's own answer is 1; *another answer of the same document is 0.5*, not a
  negative (labelling those 0 taught an earlier model to push partly relevant passages
  down); the top candidates of the hybrid and dense queries from other documents are 0,
  except documents with the same focus (often the same answer from another source: not
  labelled at all).
- **Consumer questions, training part** (the TREC 2017 LiveQA training questions, split as
  `evals/consumer.py` splits them; the devtest part is never read, nor the training-part
  questions whose text repeats a devtest question under another id, nor any passage
  whose text is a devtest reference answer): graded as that eval
  grades them (its own reference answers and focus-and-type matches 1, same focus 0.5);
  candidates with grade 0 are 0.
- **Front-door questions** (`frontdoor.jsonl` here), written as patients write for the
  articles of `corpus/`, including questions the corpus cannot answer: the answering
  section 1, sections named partly relevant 0.5, the nearest other sections 0 (every
  section 0 for an unanswerable question). Never the questions of `evals/datasets/`.

Never the MedQuAD test split (neither its questions nor its passages), never the consumer
devtest questions or their reference answers, never the TREC LiveQA test questions.

Passages are the source text (`heading` + newline + answer), for every label alike, so
the model cannot tell positives from negatives by how they were produced.
"""

import argparse
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from evals import consumer, medquad
from evals.baselines import focus_key, held_out
from evals.relevance import devval

ROOT = Path(__file__).resolve().parents[2]
FRONTDOOR = Path(__file__).resolve().parent / "frontdoor.jsonl"
CORPUS = ROOT / "corpus"
MAX_PASSAGE_CHARS = 2000  # beyond any pair length the model reads

# A searcher returns the passage keys (`article_id#section_key`) of a question's top
# candidates, best first (the eval's hybrid and dense queries in `stack_searcher`).
Searcher = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Pair:
    question: str
    passage: str
    label: float  # 1 relevant, 0.5 partly relevant, 0 not
    group: str  # the question's id: pairs of one question stay together
    source: str  # medquad | consumer | frontdoor


def _rank(seed: str, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def _clip(text: str) -> str:
    return text[:MAX_PASSAGE_CHARS]


def passage_text(heading: str, answer: str) -> str:
    """What the model reads of a passage: as `retrieval.rerank` joins section and text."""
    return _clip(f"{heading}\n{medquad.answer_markdown(answer)}")


class Passages:
    """Passage key -> text, and which keys training may never use."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}
        self.words: dict[str, str] = {}  # key -> consumer.text_key of its answer
        self.forbidden_articles: set[str] = set()
        self.forbidden_words: set[str] = set()  # devtest reference answers, wherever copied

    def add(self, key: str, heading: str, answer: str) -> None:
        self.text[key] = passage_text(heading, answer)
        self.words[key] = consumer.text_key(answer)

    def allowed(self, key: str) -> bool:
        return (
            key in self.text
            and key.split("#", 1)[0] not in self.forbidden_articles
            and self.words[key] not in self.forbidden_words
        )


def medquad_passages(docs: Iterable[medquad.MedDoc], passages: Passages) -> None:
    for doc in docs:
        if doc.split == "test" or held_out(doc):
            passages.forbidden_articles.add(doc.article_id)
            continue
        for p in doc.pairs:
            passages.add(medquad.passage_key(doc.article_id, p.heading), p.heading, p.answer)


def devtest_twins(qs: Iterable[consumer.ConsumerQuestion]) -> set[str]:
    """Ids of training-part questions whose text is a devtest question's: the two files
    repeat some questions under other ids (7 here), so the split by id alone would let
    a devtest question be trained on."""
    qs = list(qs)
    devtest = {consumer.text_key(q.text) for q in qs if q.split == "devtest"}
    return {q.id for q in qs if q.split == "train" and consumer.text_key(q.text) in devtest}


def consumer_passages(qs: Iterable[consumer.ConsumerQuestion], passages: Passages) -> None:
    qs = list(qs)
    twins = devtest_twins(qs)
    for q in qs:
        if q.split != "train" or q.id in twins:
            passages.forbidden_articles.add(q.article_id)
            passages.forbidden_words.update(consumer.text_key(a) for a in q.answers)
            continue
        for heading, answer, _ in q.sections():
            passages.add(medquad.passage_key(q.article_id, heading), heading, answer)


def medquad_pairs(
    docs: Sequence[medquad.MedDoc],
    passages: Passages,
    search: Searcher,
    *,
    questions: int,
    negatives: int = 4,
) -> list[Pair]:
    """Own answer 1, one other answer of the same document 0.5, hard negatives 0."""
    kept = [d for d in docs if d.split == "dev" and not held_out(d) and not devval(d)]
    by_focus: dict[str, set[str]] = {}
    for d in docs:
        by_focus.setdefault(focus_key(d), set()).add(d.article_id)
    items = [(d, p) for d in kept for p in d.pairs]
    items.sort(key=lambda dp: _rank("medquad-train", dp[1].qid + dp[0].file))
    out: list[Pair] = []
    for doc, pair in items[:questions]:
        group = f"medquad:{doc.file}:{pair.qid}"
        own = medquad.passage_key(doc.article_id, pair.heading)
        if not passages.allowed(own):
            continue
        out.append(Pair(pair.question, passages.text[own], 1.0, group, "medquad"))
        others = sorted(
            (
                key
                for p in doc.pairs
                if p.heading != pair.heading
                and passages.allowed(key := medquad.passage_key(doc.article_id, p.heading))
            ),
            key=lambda k: _rank(group, k),
        )
        if others:
            out.append(Pair(pair.question, passages.text[others[0]], 0.5, group, "medquad"))
        same_focus = by_focus.get(focus_key(doc), set()) | {doc.article_id}
        taken = 0
        for key in search(pair.question):
            if taken >= negatives:
                break
            if not passages.allowed(key) or key.split("#", 1)[0] in same_focus:
                continue
            out.append(Pair(pair.question, passages.text[key], 0.0, group, "medquad"))
            taken += 1
    return out


def consumer_pairs(
    qs: Sequence[consumer.ConsumerQuestion],
    index: consumer.PassageIndex,
    passages: Passages,
    search: Searcher,
    *,
    relevant: int = 4,
    partly: int = 2,
    negatives: int = 6,
) -> list[Pair]:
    """The training part only: graded as `evals/consumer.py` grades the devtest part."""
    out: list[Pair] = []
    twins = devtest_twins(qs)
    for q in qs:
        if q.split != "train" or q.id in twins:
            continue
        group = f"consumer:{q.id}"
        grades = consumer.grades(q, index)
        own = [k for k in q.passage_keys() if passages.allowed(k)]
        rel = own + sorted(
            (k for k, g in grades.items() if g == 2 and k not in own and passages.allowed(k)),
            key=lambda k: _rank(group, k),
        )
        part = sorted(
            (k for k, g in grades.items() if g == 1 and passages.allowed(k)),
            key=lambda k: _rank(group, k),
        )
        for key in dict.fromkeys(rel[:relevant]):
            out.append(Pair(q.text, passages.text[key], 1.0, group, "consumer"))
        for key in part[:partly]:
            out.append(Pair(q.text, passages.text[key], 0.5, group, "consumer"))
        taken = 0
        for key in search(q.text):
            if taken >= negatives:
                break
            if grades.get(key, 0) or not passages.allowed(key):
                continue
            out.append(Pair(q.text, passages.text[key], 0.0, group, "consumer"))
            taken += 1
    return out


# --- front-door questions over corpus/ ------------------------------------------------

_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def corpus_sections(root: Path = CORPUS) -> dict[str, str]:
    """`article_id#section_key(heading)` -> text, for each `## ` section of corpus/ (an
    article without sections is one passage under its `# ` title)."""
    out: dict[str, str] = {}
    for path in sorted(root.glob("*/*.md")):
        if path.parent.name.startswith("_"):
            continue
        raw = path.read_text("utf-8")
        front = _FRONT.match(raw)
        if front is None:
            continue
        meta = dict(
            (k.strip(), v.strip().strip('"'))
            for k, _, v in (line.partition(":") for line in front.group(1).splitlines())
        )
        body = raw[front.end() :]
        title_match = re.search(r"^# (.+)$", body, re.MULTILINE)
        title = title_match.group(1).strip() if title_match else meta.get("title", "")
        parts = re.split(r"^## (.+)$", body, flags=re.MULTILINE)
        if len(parts) == 1:
            text = re.sub(r"^# .+$", "", body, count=1, flags=re.MULTILINE).strip()
            out[medquad.passage_key(meta["id"], title)] = _clip(f"{title}\n{text}")
            continue
        for heading, text in zip(parts[1::2], parts[2::2], strict=True):
            out[medquad.passage_key(meta["id"], heading.strip())] = _clip(
                f"{heading.strip()}\n{text.strip()}"
            )
    return out


def load_frontdoor(path: Path = FRONTDOOR) -> list[dict[str, object]]:
    rows = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
    return rows


def frontdoor_pairs(
    rows: Sequence[dict[str, object]],
    sections: dict[str, str],
    nearest: Callable[[str], Sequence[str]],
    *,
    negatives: int = 5,
    path: Path = FRONTDOOR,
) -> list[Pair]:
    """Answering section 1, named partly relevant sections 0.5, nearest others 0."""
    out: list[Pair] = []
    for row in rows:
        question, group = str(row["question"]), f"frontdoor:{row['id']}"
        labelled: dict[str, float] = {}
        if row.get("article"):
            key = medquad.passage_key(str(row["article"]), str(row["section"]))
            if key not in sections:
                raise ValueError(f"{path}: {row['id']}: no section {key!r} in corpus/")
            labelled[key] = 1.0
            for part in row.get("partly") or []:  # type: ignore[attr-defined]
                other = medquad.passage_key(str(part["article"]), str(part["section"]))
                if other not in sections:
                    raise ValueError(f"{path}: {row['id']}: no section {other!r} in corpus/")
                labelled.setdefault(other, 0.5)
        for key, label in labelled.items():
            out.append(Pair(question, sections[key], label, group, "frontdoor"))
        taken = 0
        for key in nearest(question):
            if taken >= negatives:
                break
            if key in labelled:
                continue
            out.append(Pair(question, sections[key], 0.0, group, "frontdoor"))
            taken += 1
    return out


def dense_nearest(texts: dict[str, str], depth: int = 12) -> Callable[[str], list[str]]:
    """Nearest sections by the bundled encoder's cosine (corpus/ is small: exact search)."""
    import numpy as np

    from retrieval.embed import DEFAULT_MODEL, Embedder

    embedder = Embedder(DEFAULT_MODEL)
    keys = list(texts)
    matrix = np.asarray(embedder.embed([texts[k] for k in keys]), np.float32)

    def nearest(question: str) -> list[str]:
        scores = matrix @ np.asarray(embedder.embed_query(question), np.float32)
        return [keys[i] for i in np.argsort(-scores)[:depth]]

    return nearest


def stack_searcher(home: Path, depth: int = 30) -> tuple[Searcher, Callable[[], None]]:
    """The consumer eval's index: hybrid top `depth`, then dense top `depth` not yet seen."""
    from canon.cli import _eval_settings
    from canon.runtime import Runtime
    from governance.models import Audience

    if not (home / "canon.db").is_file():
        raise SystemExit(f"{home}: no index; build it first with `canon eval consumer`")
    runtime = Runtime(_eval_settings(home))
    retriever = runtime.retriever
    retriever.reranker = None

    def search(question: str) -> list[str]:
        vector = retriever.embedder.embed_query(question)
        keys: list[str] = []
        for mode in ("hybrid", "dense"):
            for p in retriever.search(
                question, audience=Audience.patient, top_k=depth, mode=mode, query_vector=vector
            ):
                keys.append(medquad.passage_key(p.article_id, p.section))
        return list(dict.fromkeys(keys))

    return search, runtime.close


def build(
    search: Searcher,
    *,
    medquad_questions: int = 800,
    docs: Sequence[medquad.MedDoc] | None = None,
    questions: Sequence[consumer.ConsumerQuestion] | None = None,
    frontdoor: Sequence[dict[str, object]] | None = None,
    nearest: Callable[[str], Sequence[str]] | None = None,
) -> list[Pair]:
    docs = medquad.load_documents() if docs is None else docs
    qs = consumer.load_questions() if questions is None else questions
    passages = Passages()
    medquad_passages(docs, passages)
    consumer_passages(qs, passages)
    index = consumer.PassageIndex.build([d for d in docs if not held_out(d)], qs)
    pairs = medquad_pairs(docs, passages, search, questions=medquad_questions)
    pairs += consumer_pairs(qs, index, passages, search)
    rows = load_frontdoor() if frontdoor is None else frontdoor
    if rows:
        sections = corpus_sections()
        pairs += frontdoor_pairs(rows, sections, nearest or dense_nearest(sections))
    return pairs


def write(pairs: Iterable[Pair], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(out)  # never a half-written pairs file
    return n


def read(path: Path) -> list[Pair]:
    out = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        try:
            out.append(Pair(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a training pair ({exc})") from exc
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=ROOT / ".canon-evals" / "consumer")
    parser.add_argument("--out", type=Path, default=ROOT / ".train" / "relevance" / "pairs.jsonl")
    parser.add_argument("--medquad-questions", type=int, default=800)
    args = parser.parse_args(argv)
    search, close = stack_searcher(args.home)
    try:
        pairs = build(search, medquad_questions=args.medquad_questions)
    finally:
        close()
    n = write(pairs, args.out)
    counts: dict[str, int] = {}
    for p in pairs:
        counts[f"{p.source} {p.label:g}"] = counts.get(f"{p.source} {p.label:g}", 0) + 1
    print(f"relevance data: {n} pairs -> {args.out}", json.dumps(counts, sort_keys=True))


if __name__ == "__main__":
    main()
