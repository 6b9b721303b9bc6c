"""MedQuAD (CC BY 4.0) as a Canon corpus and a retrieval/abstention eval.

MedQuAD: Ben Abacha & Demner-Fushman, "A Question-Entailment Approach to Question
Answering", BMC Bioinformatics 2019. Licensed CC BY 4.0; the attribution travels
with the data (ATTRIBUTION below, `_ATTRIBUTION.md` beside a written corpus, the
footer of every report).

Each `<Document>` becomes one article (title = Focus, one `## <question>` section per
answered QA pair). A question's relevant passages are its own answer (grade 2) and
the other answers of its document (grade 1). Documents split deterministically into
dev and test by the SHA-1 of their id (see ../shared/data/README.md).
"""

import hashlib
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = Path(os.environ.get("CANON_MEDQUAD", ROOT.parent / "shared" / "data" / "medquad"))
ATTRIBUTION = (
    'MedQuAD (Ben Abacha & Demner-Fushman, "A Question-Entailment Approach to Question '
    'Answering", BMC Bioinformatics 2019, https://github.com/abachaa/MedQuAD), '
    "licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). "
    "Question-answer pairs built from NIH patient-facing web pages; reformatted for Canon."
)
ARTICLE_PREFIX = "medquad-"

Split = Literal["dev", "test"]


@dataclass(frozen=True)
class QAPair:
    qid: str
    qtype: str
    question: str
    answer: str
    heading: str  # the section heading written for this answer (unique within its document)


@dataclass(frozen=True)
class MedDoc:
    id: str  # the XML `id`: decides the split; not unique (sources reuse ids)
    file: str  # `<folder>/<stem>`: unique
    source: str
    url: str
    focus: str
    pairs: tuple[QAPair, ...]

    @property
    def article_id(self) -> str:
        return article_id_of(self.source, Path(self.file).name)

    @property
    def split(self) -> Split:
        return split_of(self.id)

    @property
    def service_line(self) -> str:
        return service_line_of(self.source)


def missing_reason(root: Path | None = None) -> str | None:
    """None when the data is there; otherwise the message to skip with."""
    root = DATA_ROOT if root is None else root
    if not root.is_dir() or not any(root.glob("*/*.xml")):
        return f"skipped: {root} not found (MedQuAD lives in ../shared/data/medquad)"
    return None


def split_of(document_id: str) -> Split:
    return "test" if int(hashlib.sha1(document_id.encode()).hexdigest(), 16) % 5 == 0 else "dev"


def article_id_of(source: str, stem: str) -> str:
    """`medquad-<source>-<file stem>`: XML ids repeat across sources and files."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-")
    return f"{ARTICLE_PREFIX}{service_line_of(source)}-{slug}"


def service_line_of(source: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-") or "general"


def section_key(heading: str) -> str:
    """What survives Markdown parsing of a heading: lowercase words and digits."""
    return " ".join(re.findall(r"[a-z0-9]+", heading.lower()))


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _parse(path: Path) -> MedDoc | None:
    node = ET.parse(path).getroot()
    doc_id = node.get("id") or path.stem
    pairs: list[QAPair] = []
    seen: dict[str, int] = {}
    for pair in node.iter("QAPair"):
        q, a = pair.find("Question"), pair.find("Answer")
        if q is None or a is None or not (a.text or "").strip():
            continue
        question = _clean(q.text)
        if not question:
            continue
        key = section_key(question)
        seen[key] = seen.get(key, 0) + 1
        heading = question if seen[key] == 1 else f"{question} ({seen[key]})"
        pairs.append(
            QAPair(
                qid=q.get("qid") or f"{doc_id}-{len(pairs) + 1}",
                qtype=q.get("qtype") or "",
                question=question,
                answer=(a.text or "").strip(),
                heading=heading,
            )
        )
    if not pairs:
        return None
    return MedDoc(
        id=doc_id,
        file=f"{path.parent.name}/{path.stem}",
        source=node.get("source") or path.parent.name,
        url=node.get("url") or "",
        focus=_clean(node.findtext("Focus")) or doc_id,
        pairs=tuple(pairs),
    )


def load_documents(
    root: Path | None = None, *, split: Split | None = None, limit: int | None = None
) -> list[MedDoc]:
    """Documents with at least one answered question, in a stable order (by path).

    `limit` keeps the first N documents of a stable hash order, so a subset spreads
    over all sources and both splits.
    """
    root = DATA_ROOT if root is None else root
    reason = missing_reason(root)
    if reason is not None:
        raise FileNotFoundError(reason)
    docs = [d for p in sorted(root.glob("*/*.xml")) if (d := _parse(p)) is not None]
    if split is not None:
        docs = [d for d in docs if d.split == split]
    if limit is not None:
        docs = sorted(docs, key=lambda d: hashlib.sha1(b"subset:" + d.file.encode()).hexdigest())
        docs = sorted(docs[:limit], key=lambda d: d.file)
    return docs


_INLINE_BULLET = re.compile(r"\s{2,}-\s+")
_RULE = re.compile(r"^[-=_*\s]+$")


def answer_markdown(answer: str) -> str:
    """MedQuAD answers keep the page's layout as runs of spaces; restore list items."""
    lines: list[str] = []
    for raw in answer.splitlines():
        for piece in _INLINE_BULLET.sub("\n- ", raw).splitlines():
            line = " ".join(piece.split())
            if not line or _RULE.match(line):
                if lines and lines[-1]:
                    lines.append("")
                continue
            if line.startswith("#"):
                line = "\\" + line
            if lines and lines[-1] and line.startswith("- ") != lines[-1].startswith("- "):
                lines.append("")  # a blank line between a paragraph and a list
            lines.append(line)
    return "\n".join(lines).strip()


def article_markdown(
    doc: MedDoc,
    *,
    owner: str = "MedQuAD import (NIH, CC BY 4.0)",
    audience: str = "patient",
    review_every_days: int = 3650,
    last_reviewed: date = date(2026, 11, 1),
    clinical: bool = True,
) -> str:
    front = [
        "---",
        f"id: {doc.article_id}",
        f"title: {json.dumps(doc.focus)}",
        f"owner: {json.dumps(owner)}",
        f"service_line: {doc.service_line}",
        f"audience: {audience}",
        f"review_every_days: {review_every_days}",
        f"last_reviewed: {last_reviewed.isoformat()}",
        f"clinical: {'true' if clinical else 'false'}",
        f"source_url: {json.dumps(doc.url)}",
        "---",
        f"# {doc.focus}",
        "",
        "",
    ]
    body = [f"## {p.heading}\n\n{answer_markdown(p.answer)}\n" for p in doc.pairs]
    return "\n".join(front) + "\n".join(body)


def write_corpus(out_dir: Path, docs: Iterable[MedDoc], **meta: object) -> int:
    """One Markdown file per document under `out_dir/<service_line>/`; returns the count.

    Files are rewritten only when their text changes, so re-ingesting is a no-op.
    Writes `_ATTRIBUTION.md` and `_LICENSE.txt` beside them (ingest skips `_` names).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for doc in docs:
        path = out_dir / doc.service_line / f"{doc.article_id}.md"
        text = article_markdown(doc, **meta)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
        count += 1
    (out_dir / "_ATTRIBUTION.md").write_text(f"# Attribution\n\n{ATTRIBUTION}\n", "utf-8")
    licence = DATA_ROOT / "LICENSE.txt"
    if licence.is_file():
        shutil.copyfile(licence, out_dir / "_LICENSE.txt")
    return count


@dataclass(frozen=True)
class MedQuestion:
    id: str  # the MedQuAD qid
    question: str
    article_id: str
    heading: str
    split: Split
    relevant: dict[str, int]  # passage key -> grade (2 = its own answer, 1 = same document)


def passage_key(article_id: str, heading: str) -> str:
    """The passage-level relevance key: `article_id#section_key(heading)`."""
    return f"{article_id}#{section_key(heading)}"


def questions(docs: Sequence[MedDoc]) -> list[MedQuestion]:
    """One question per answered QA pair, with passage-level graded relevance."""
    out: list[MedQuestion] = []
    for doc in docs:
        keys = [passage_key(doc.article_id, p.heading) for p in doc.pairs]
        for pair, own in zip(doc.pairs, keys, strict=True):
            relevant = {k: 1 for k in keys} | {own: 2}
            out.append(
                MedQuestion(
                    pair.qid, pair.question, doc.article_id, pair.heading, doc.split, relevant
                )
            )
    return out


def article_body(doc: MedDoc) -> str:
    """The article as a reader sees it: the Markdown without front matter."""
    text = article_markdown(doc)
    return text[text.index("\n---\n", 4) + 5 :]
