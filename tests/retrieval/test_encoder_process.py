"""The query encoder in a child process gives the in-process encoder's vectors, survives
the child's death, and reports a child that cannot start."""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from governance.errors import IndexUnavailable
from retrieval.embed import Embedder
from retrieval.encoder_process import EncoderProcess

QUESTIONS = [
    "Is the billing office open on Saturday?",
    "How do I get my MRI prep instructions?",
    "can my sister pick up my prescription",
    "What is financial assistance?",
]


@pytest.fixture(scope="module")
def child(embedder: Embedder) -> Iterator[EncoderProcess]:
    process = EncoderProcess(embedder.model_path, embedder.backend)
    yield process
    process.close()


def test_vectors_are_the_in_process_ones_bit_for_bit(
    child: EncoderProcess, embedder: Embedder
) -> None:
    assert child.dim == embedder.dim
    assert child.version == embedder._encoder.version
    got = child.encode(QUESTIONS)  # a batch: spread over threads in the child
    assert np.array_equal(got, embedder.embed(QUESTIONS))
    assert np.array_equal(child.encode(QUESTIONS[:1]), embedder.embed(QUESTIONS[:1]))


def test_a_batching_encoder_gets_the_batch_in_one_call(embedder: Embedder) -> None:
    """PyTorch batches (its vectors are those of `Embedder.embed` on the same batch, which
    pads to the longest text), so the child must not split the batch one text per call."""
    from retrieval.embed import TorchEncoder

    process = EncoderProcess(embedder.model_path, "torch")
    try:
        assert process.version == "torch"
        local = TorchEncoder(embedder.model_path)
        assert np.array_equal(process.encode(QUESTIONS), local.encode(QUESTIONS, 32))
        assert np.array_equal(process.encode(QUESTIONS[2:3]), local.encode(QUESTIONS[2:3], 32))
    finally:
        process.close()


def test_a_dead_child_is_replaced_on_the_next_call(
    child: EncoderProcess, embedder: Embedder
) -> None:
    pid, starts = child.pid, child.starts
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    got = child.encode(QUESTIONS[1:3])
    assert child.starts == starts + 1 and child.pid != pid
    assert np.array_equal(got, embedder.embed(QUESTIONS[1:3]))


def test_a_child_that_cannot_load_its_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexUnavailable, match="failed to start"):
        EncoderProcess(tmp_path / "no-model-here", "onnx-int8", tmp_path / "onnx")


def test_the_embedder_serves_queries_through_the_child(embedder: Embedder) -> None:
    served = Embedder(embedder.model_name, backend=embedder.backend, cache_size=0)
    try:
        served.enable_micro_batching(process=True)
        assert served._process is not None and served._process.pid is not None
        assert np.array_equal(served.embed_query(QUESTIONS[0]), embedder.embed(QUESTIONS[:1])[0])
    finally:
        served.disable_micro_batching()
    assert served._process is None and served.batcher is None


def test_the_app_serves_through_the_child_and_stops_it(tmp_path: Path, embedder: Embedder) -> None:
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from canon.app import create_app
    from canon.runtime import Runtime
    from canon.settings import Settings
    from evals.runner import publish_sample
    from governance import keys

    rt = Runtime(Settings(home=tmp_path / "home", query_encoder_process=True), embedder=embedder)
    try:
        publish_sample(rt)
        with Session(rt.engine) as s:
            _key, secret = keys.create(s, name="agent", scopes=["answer"], created_by="test")
        with TestClient(create_app(rt)) as client:
            child = embedder._process
            assert child is not None and child.pid is not None
            for path in ("/v1/search", "/v1/answer"):
                response = client.post(
                    path,
                    json={"question": QUESTIONS[0]},
                    headers={"Authorization": f"Bearer {secret}"},
                )
                assert response.status_code == 200, response.text
            assert client.post(
                "/v1/search",
                json={"question": QUESTIONS[0]},
                headers={"Authorization": f"Bearer {secret}"},
            ).json()["passages"]
        assert embedder._process is None  # stopped with the app
    finally:
        rt.close()


@pytest.mark.parametrize(("backend", "limit"), [("onnx-int8", 8), ("torch", 64)])
def test_the_batch_limit_follows_the_encoder(embedder: Embedder, backend: str, limit: int) -> None:
    """The int8 graph runs one text per call, so small batches keep the child and the loop
    both busy; PyTorch does less work per text in large batches."""
    served = Embedder(embedder.model_name, backend=backend, cache_size=0)
    try:
        assert served.enable_micro_batching(process=True).max_batch == limit
    finally:
        served.disable_micro_batching()
