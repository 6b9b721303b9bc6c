"""The triage patterns' ASCII fast path (lowercase, case-sensitive) decides exactly what
the IGNORECASE patterns decide, and text beyond ASCII still goes through those."""

import json
from pathlib import Path

import pytest

from evals import datasets
from retrieval import triage as t
from retrieval.triage import Triage, triage

QUESTIONS = [
    json.loads(line)["question"]
    for line in (Path(__file__).parent / "escalation.jsonl").read_text().splitlines()
    if line.strip()
] + [q.question for q in datasets.load("sample")]


def reference(question: str) -> Triage:
    """Triage as it was: every pattern with IGNORECASE on the question as given."""
    for pattern, reason in t._URGENT_RE:
        if pattern.search(question):
            category = t._pattern_category(reason, True)
            return Triage(
                True,
                f"{category}: {reason}; direct the patient to emergency care or a nurse",
                True,
                category,
                source="patterns",
            )
    for pattern, reason in t._CLINICAL_RE:
        if pattern.search(question):
            return Triage(
                True,
                f"clinical_judgment: {reason}; a clinician must answer",
                category="clinical_judgment",
                source="patterns",
            )
    return Triage(False)


def test_patterns_are_lowercase_ascii() -> None:
    """What makes lowercasing an ASCII question equivalent to IGNORECASE."""
    for pattern, _ in [*t._URGENT, *t._CLINICAL]:
        assert pattern.isascii() and pattern == pattern.lower()


@pytest.mark.parametrize("case", [str, str.upper, str.title, str.swapcase])
def test_same_decision_as_ignorecase_on_every_labelled_question(case: object) -> None:
    assert callable(case)
    escalated = 0
    for question in QUESTIONS:
        asked = case(question)
        assert triage(asked) == reference(asked), asked
        escalated += triage(asked).escalate
    assert escalated > 40  # the set exercises the patterns, not only the fall-through


def test_text_beyond_ascii_keeps_unicode_case_folding() -> None:
    # 'ſ' (long s) matches 's' only under IGNORECASE; lowercasing would not find it.
    question = "my son got into the POIſON under the sink"
    assert not question.isascii() and "poison" not in question.lower()
    assert triage(question) == reference(question)
    assert triage(question).urgent
    assert triage("CHEST PAIN since this morning, é").urgent
