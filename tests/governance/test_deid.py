"""De-identification measured on labelled PHI-bearing questions, and on the golden questions
(which carry no PHI) for what it scrubs by mistake.

`phi_questions.jsonl` holds 48 patient questions with every PHI span labelled (names with
and without a cue, phones, dates of birth, MRNs, account, claim and member ids, SSNs,
emails, street and PO-box addresses, ZIP codes); the rules were tuned on it (recall went
from 44/68 to 68/68). `phi_holdout.jsonl` holds 16 more, written after that tuning: first
measured at 18/22; three general name cues it exposed ("its", "... here", sign-offs,
"name is") bring it to 21/22, so it is no longer blind. Rerun and print the figures with
`.venv/bin/pytest tests/governance/test_deid.py -q -s`.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from governance.deid import deidentify

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent.parent / "evals" / "datasets" / "sample.jsonl"
ADDRESS_WORDS = {"Street", "St", "Apt", "Road", "Rd", "Avenue", "Ave", "PO", "Box", "N", "S"}


@dataclass(frozen=True)
class Span:
    text: str
    kind: str

    def identifying_parts(self) -> list[str]:
        """What must not survive: a name's words, an address's street name and numbers,
        an email's local part, any run of three or more digits."""
        parts = [self.text]
        words = re.findall(r"[\w'.-]+", self.text)
        if self.kind == "NAME":
            parts += [w for w in words if len(w) > 1]
        elif self.kind == "ADDRESS":
            parts += [
                w for w in words if w not in ADDRESS_WORDS and (w[0].isupper() or w[0].isdigit())
            ]
        elif self.kind == "EMAIL":
            parts.append(self.text.split("@")[0])
        parts += re.findall(r"\d{3,}", self.text)
        return parts

    def leaked_in(self, output: str) -> bool:
        return any(
            re.search(rf"(?<![\w]){re.escape(p)}(?![\w])", output) for p in self.identifying_parts()
        )


def load(name: str) -> list[tuple[str, list[Span]]]:
    rows = [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]
    return [(r["text"], [Span(p["text"], p["type"]) for p in r["phi"]]) for r in rows]


@dataclass(frozen=True)
class Scores:
    spans: int
    scrubbed: int
    kept_words: int
    other_words: int
    misses: list[tuple[str, str]]

    @property
    def recall(self) -> float:
        return self.scrubbed / self.spans

    @property
    def kept(self) -> float:
        return self.kept_words / self.other_words


def measure(rows: list[tuple[str, list[Span]]]) -> Scores:
    spans = scrubbed = kept = other = 0
    misses = []
    for text, labelled in rows:
        output = deidentify(text)
        for span in labelled:
            spans += 1
            if span.leaked_in(output):
                misses.append((span.kind, span.text))
            else:
                scrubbed += 1
        rest = text
        for span in labelled:
            rest = rest.replace(span.text, " ")
        words = [w for w in re.findall(r"[A-Za-z]{3,}", rest)]
        other += len(words)
        kept += sum(1 for w in words if re.search(rf"\b{re.escape(w)}\b", output))
    return Scores(spans, scrubbed, kept, other, misses)


def golden_questions() -> list[str]:
    return [json.loads(line)["question"] for line in GOLDEN.read_text().splitlines() if line]


def test_the_datasets_are_labelled_consistently() -> None:
    for name in ("phi_questions.jsonl", "phi_holdout.jsonl"):
        rows = load(name)
        assert len(rows) >= (40 if name == "phi_questions.jsonl" else 15)
        for text, spans in rows:
            assert spans and all(s.text in text for s in spans), text


@pytest.mark.parametrize(
    ("name", "min_recall"), [("phi_questions.jsonl", 0.97), ("phi_holdout.jsonl", 0.9)]
)
def test_scrubbing_recall_on_labelled_phi(name: str, min_recall: float) -> None:
    scores = measure(load(name))
    print(
        f"\n{name}: {scores.scrubbed}/{scores.spans} PHI spans scrubbed "
        f"(recall {scores.recall:.3f}); other words kept {scores.kept_words}/{scores.other_words} "
        f"({scores.kept:.3f}); missed: {scores.misses}"
    )
    assert scores.recall >= min_recall, scores.misses
    assert scores.kept >= 0.97


def test_false_scrubs_on_the_golden_questions() -> None:
    questions = golden_questions()
    changed = [(q, deidentify(q)) for q in questions if deidentify(q) != q]
    print(f"\ngolden questions changed: {len(changed)}/{len(questions)}: {changed}")
    assert len(changed) <= 0.02 * len(questions), changed
