"""Triage on a labelled set of patient messages: recall on urgent and crisis messages,
false escalation on routine ones, by language, kind and category, and the latency of one
check.

    canon eval triage --set holdout     # the sealed holdout: measure once, never tune on it
    canon eval triage --set escalation  # the older pattern set's holdout splits

The development set (`--set dev`) is the model's training data: its figures mean nothing
for the model itself, so the card reports out-of-fold figures from training instead
(models/canon-triage/model.json); `--set dev` with `--model off` measures the pattern
list alone, which never saw it.
"""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from governance.errors import InvalidInput
from retrieval.triage import Triage

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "dev": ROOT / "evals" / "datasets" / "triage" / "dev.jsonl",
    "holdout": ROOT / "evals" / "datasets" / "triage" / "holdout.jsonl",
    "escalation": ROOT / "tests" / "retrieval" / "escalation.jsonl",
}


@dataclass(frozen=True)
class Message:
    id: str
    text: str
    urgent: bool
    category: str
    language: str
    kind: str


def load(name: str) -> list[Message]:
    if name not in SETS:
        raise InvalidInput(f"--set {name!r}: choose one of {', '.join(SETS)}")
    out = []
    for n, line in enumerate(SETS[name].read_text().splitlines(), 1):
        row = json.loads(line)
        if name == "escalation":  # only the splits no triage choice was tuned on
            if not str(row.get("split", "")).startswith("holdout"):
                continue
            out.append(
                Message(
                    f"e{n}",
                    row["question"],
                    bool(row["urgent"]),
                    "urgent" if row["urgent"] else "routine",
                    "en",
                    str(row["split"]),
                )
            )
            continue
        out.append(
            Message(
                row["id"],
                row["message"],
                bool(row["urgent"]),
                row["category"],
                row["language"],
                row["kind"],
            )
        )
    return out


def _rates(pairs: Sequence[tuple[bool, bool]]) -> dict[str, Any]:
    pos = [flag for urgent, flag in pairs if urgent]
    neg = [flag for urgent, flag in pairs if not urgent]
    return {
        "urgent": len(pos),
        "caught": sum(pos),
        "recall": round(sum(pos) / len(pos), 4) if pos else None,
        "routine": len(neg),
        "escalated": sum(neg),
        "false_escalation": round(sum(neg) / len(neg), 4) if neg else None,
    }


def run(messages: Sequence[Message], check: Callable[[str], Triage]) -> dict[str, Any]:
    """Every message through `check`; figures overall and by group, the misses and false
    alarms by id, category agreement, and per-check latency (p50, p95)."""
    results: list[tuple[Message, Triage, float]] = []
    for m in messages:
        began = time.perf_counter()
        t = check(m.text)
        results.append((m, t, time.perf_counter() - began))
    groups: dict[str, list[tuple[bool, bool]]] = {}
    for m, t, _ in results:
        for key in ("all", f"language={m.language}", f"kind={m.kind}", f"category={m.category}"):
            groups.setdefault(key, []).append((m.urgent, t.escalate))
    caught = [(m, t) for m, t, _ in results if m.urgent and t.escalate]
    same = sum(t.category == m.category for m, t in caught)
    languages = sum(t.language == m.language for m, t, _ in results)
    seconds = np.array([s for _, _, s in results])
    return {
        "messages": len(results),
        "groups": {k: _rates(v) for k, v in sorted(groups.items())},
        "missed": [m.id for m, t, _ in results if m.urgent and not t.escalate],
        "false_alarms": [m.id for m, t, _ in results if not m.urgent and t.escalate],
        "category_agreement": round(same / len(caught), 4) if caught else None,
        "language_accuracy": round(languages / len(results), 4) if results else None,
        "by_source": {
            source: sum(1 for m, t, _ in results if t.escalate and t.source == source)
            for source in ("model", "patterns")
        },
        "ms_p50": round(float(np.percentile(seconds, 50)) * 1000, 3),
        "ms_p95": round(float(np.percentile(seconds, 95)) * 1000, 3),
    }


def table(report: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    """Markdown rows: group, recall (caught/urgent), false escalation (escalated/routine)."""
    lines = ["| group | recall | false escalation |", "|---|---|---|"]
    for key, r in report["groups"].items():
        if keys is not None and key not in keys:
            continue
        recall = f"{r['recall']:.3f} ({r['caught']}/{r['urgent']})" if r["urgent"] else "-"
        false = (
            f"{r['false_escalation']:.3f} ({r['escalated']}/{r['routine']})"
            if r["routine"]
            else "-"
        )
        lines.append(f"| {key} | {recall} | {false} |")
    return "\n".join(lines)
