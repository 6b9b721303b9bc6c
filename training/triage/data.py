"""The triage training data: the development set and the tuning splits of the older
escalation set. Never the sealed holdout (`evals/datasets/triage/holdout.jsonl`), never the
`holdout*` splits of `tests/retrieval/escalation.jsonl`."""

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "evals" / "datasets" / "triage" / "dev.jsonl"
ESCALATION = ROOT / "tests" / "retrieval" / "escalation.jsonl"


@dataclass(frozen=True)
class Example:
    message: str
    category: str  # one of retrieval.triage_model.CATEGORIES
    language: str
    kind: str
    source: str


def load_examples() -> list[Example]:
    examples = []
    for line in DEV.read_text().splitlines():
        row = json.loads(line)
        examples.append(
            Example(row["message"], row["category"], row["language"], row["kind"], "dev")
        )
    for line in ESCALATION.read_text().splitlines():
        row = json.loads(line)
        if str(row.get("split", "")).startswith("holdout"):
            continue  # the pattern tests' own holdouts
        # This older set has no categories: an urgent message counts as an emergency for
        # the category head; escalation reads only urgent versus routine.
        category = "emergency" if row["urgent"] else "routine"
        examples.append(Example(row["question"], category, "en", "escalation", "escalation"))
    return examples
