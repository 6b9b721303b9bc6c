"""bench/answer_bench.py builds its large indexes in streamed batches with staged optimizes;
the points must be the ones the one-shot `synthesize` made (earlier runs' data)."""

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests import benchmod


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return benchmod.load("answer_bench")


def _real(n: int = 12) -> list[tuple[np.ndarray, dict[str, Any]]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        v = rng.normal(size=384).astype(np.float32)
        payload = {
            "text": f"Sentence one of chunk {i}. Sentence two about billing {i}. A third one.",
            "version_id": i % 3,
            "audience": "patient",
            "service_line": "billing",
        }
        out.append((v / np.linalg.norm(v), payload))
    return out


def test_batches_are_the_one_shot_points(bench: ModuleType) -> None:
    real = _real()
    vectors, payloads = bench.synthesize(real, 5000, seed=7)
    batches = list(bench.synthesize_batches(real, 5000, seed=7, batch=999))
    assert [len(p) for _, p in batches] == [999] * 5 + [5]
    assert np.array_equal(np.vstack([v for v, _ in batches]), vectors)
    assert [p for _, ps in batches for p in ps] == payloads
    assert vectors.shape == (5000, 384) and vectors.dtype == np.float32
    empty, none = bench.synthesize(real, 0, seed=7)
    assert empty.shape == (0, 384) and none == []


def test_a_filler_changes_only_the_text(bench: ModuleType) -> None:
    real = _real()
    filler = [[f"Filler {i} says {w}." for w in ("alpha", "beta", "gamma")] for i in range(5)]
    plain_vectors, plain = bench.synthesize(real, 500, seed=3)
    vectors, payloads = bench.synthesize(real, 500, seed=3, filler=filler)
    assert np.array_equal(vectors, plain_vectors)
    assert [p | {"text": ""} for p in payloads] == [p | {"text": ""} for p in plain]
    allowed = {s for chunk in filler for s in chunk}
    for payload in payloads:
        parts = [s + "." for s in payload["text"].split(". ") if s]
        parts[-1] = parts[-1].removesuffix(".")
        assert set(parts) <= allowed and len(parts) == 4  # three shuffled, one spliced in
    batched = list(bench.synthesize_batches(real, 500, seed=3, batch=128, filler=filler))
    assert [p for _, ps in batched for p in ps] == payloads


def test_grow_batches_optimizes_per_stage_and_writes_every_point(
    bench: ModuleType, tmp_path: Path
) -> None:
    real = _real()
    figures = bench.grow_batches(
        tmp_path, bench.synthesize_batches(real, 5000, seed=1, batch=1000), stage=2000
    )
    assert [o["points_written"] for o in figures["optimizes"]] == [2000, 4000, 5000]
    assert figures["build_seconds"] == pytest.approx(
        figures["upsert_seconds"] + figures["optimize_seconds"], abs=0.11
    )
    described = bench.describe_index(tmp_path)
    assert described["points"] == 5000
    assert described["edge_config"]["vectors"]["dense"]["size"] == 384
    json.dumps(described)  # recorded in bench-build.json


def test_grow_keeps_one_optimize_below_a_stage(bench: ModuleType, tmp_path: Path) -> None:
    """The 10k/100k runs (and load_bench) build as before: one optimize at the end."""
    real = _real()
    vectors, payloads = bench.synthesize(real, 3000, seed=2)
    seconds = bench.grow(tmp_path, vectors, payloads)
    assert seconds >= 0
    assert bench.describe_index(tmp_path)["points"] == 3000
