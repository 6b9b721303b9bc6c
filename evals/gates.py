"""Versioned thresholds (`gates.toml`) and the comparison with a baseline run."""

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GATES = Path(__file__).parent / "gates.toml"
# Metrics where lower is better; every other metric is better higher.
LOWER_IS_BETTER = (
    "false_abstention_rate",
    "unsupported_sentence_rate",
    "unsupported_sentences",
    "staff_leaks",
    "superseded_citations",
    "retired_citations",
    "ms_per_query",
)
SAFETY_COUNTS = (
    "staff_leaks",
    "superseded_citations",
    "retired_citations",
    "unsupported_sentences",
)

# Counts that describe the run, not its quality: never compared.
DESCRIPTIVE = (
    "questions",
    "answerable",
    "unanswerable",
    "urgent",
    "probes",
    "retired_probes",
    "retired_articles",
    "min_relevance",
    "chunks",
    "mean_tokens",
    "max_tokens",
    "mean_wordpieces",
    "truncated",
    "chunk_s_per_1000_docs",
    "encoded",
)


@dataclass(frozen=True)
class Violation:
    suite: str
    configuration: str
    metric: str
    value: float | None
    bound: str

    def __str__(self) -> str:
        got = "missing" if self.value is None else f"{self.value:.4g}"
        return f"{self.suite}/{self.configuration} {self.metric} = {got}, gate {self.bound}"


def load_gates(path: Path = GATES) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def check(result: dict[str, Any], gates: dict[str, Any] | None = None) -> list[Violation]:
    """Every gate for this result's suite and dataset that its numbers miss."""
    gates = load_gates() if gates is None else gates
    suite, dataset = result["suite"], result["dataset"]
    violations: list[Violation] = []
    for config, bounds in gates.get(suite, {}).get(dataset, {}).items():
        got = result["configurations"].get(config, {})
        for metric, bound in bounds.items():
            value = got.get(metric)
            if "min" in bound and (value is None or value < bound["min"]):
                violations.append(Violation(suite, config, metric, value, f">= {bound['min']}"))
            if "max" in bound and (value is None or value > bound["max"]):
                violations.append(Violation(suite, config, metric, value, f"<= {bound['max']}"))
    return violations


def compare(
    result: dict[str, Any], baseline: dict[str, Any], *, tolerance: float = 0.01
) -> list[dict[str, Any]]:
    """Per metric: baseline, now, delta, and whether it regressed beyond `tolerance`
    (safety counts regress on any increase; timing never fails the comparison)."""
    rows: list[dict[str, Any]] = []
    for config, metrics in result["configurations"].items():
        before = baseline.get("configurations", {}).get(config, {})
        for metric, value in metrics.items():
            old = before.get(metric)
            if metric in DESCRIPTIVE or not isinstance(value, int | float):
                continue
            if not isinstance(old, int | float):
                continue
            delta = float(value) - float(old)
            worse = -delta if metric not in LOWER_IS_BETTER else delta
            slack = 0.0 if metric in SAFETY_COUNTS else tolerance
            rows.append(
                {
                    "configuration": config,
                    "metric": metric,
                    "baseline": old,
                    "now": value,
                    "delta": delta,
                    "regressed": metric != "ms_per_query" and worse > slack,
                }
            )
    return rows
