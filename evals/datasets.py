"""Golden sets: questions with graded relevant articles."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from governance.errors import InvalidInput
from governance.models import Audience

DATASETS = Path(__file__).parent / "datasets"
CATEGORIES = {"answerable", "staff_only", "unanswerable", "urgent", "versioned", "retired"}


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    audience: Audience
    relevant: dict[str, int]
    category: str
    answer_contains: list[str] = field(default_factory=list)
    escalate: bool = False

    @property
    def answerable(self) -> bool:
        return bool(self.relevant) and self.category not in ("unanswerable", "urgent")


def load(name: str) -> list[Question]:
    path = DATASETS / f"{name}.jsonl" if not name.endswith(".jsonl") else Path(name)
    if not path.is_file():
        raise InvalidInput(f"dataset {name!r}: no file {path}")
    questions: list[Question] = []
    for line_no, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if raw["category"] not in CATEGORIES:
                raise ValueError(f"unknown category {raw['category']!r}")
            questions.append(
                Question(
                    id=raw["id"],
                    question=raw["question"],
                    audience=Audience(raw.get("audience", "patient")),
                    relevant={str(k): int(v) for k, v in raw.get("relevant", {}).items()},
                    category=raw["category"],
                    answer_contains=list(raw.get("answer_contains") or []),
                    escalate=bool(raw.get("escalate", False)),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidInput(f"{path}:{line_no}: {exc}") from None
    return questions
