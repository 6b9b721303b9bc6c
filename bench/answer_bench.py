"""Latency and throughput of /v1/search and /v1/answer at scale, 1/8/32 concurrent clients,
beside a naive LlamaIndex pipeline on the same data and the encoder's own ceiling.

Data. The sample corpus is published for real (324 chunks, real embeddings). Each
larger index adds SYNTHETIC passages until it holds N points: a synthetic passage is
a real chunk with its sentences shuffled and one sentence of another real chunk
spliced in; its dense vector is the normalised mix 0.8·v(chunk) + 0.2·v(other) plus
Gaussian noise (σ=0.02 per dimension, about 0.4 in norm) -- not a model embedding of
its text; its BM25 vector is computed from its text. Synthetic points carry the payload (and so
the published version) of their source chunk, so every one passes the live-version
check like real content. Query embeddings are always real: every request embeds its
question (`CANON_QUERY_CACHE_SIZE=0`).

Naive pipeline. LlamaIndex `VectorStoreIndex` with its default in-memory
`SimpleVectorStore`, the same embedding model, and the same passages as nodes with the
same vectors (the default `SentenceSplitter` leaves passages under 1024 tokens whole,
so nodes are inserted directly rather than re-embedding 100k texts); `/search` is
`as_retriever(similarity_top_k=5)`, `/answer` is `as_query_engine()` with no LLM
(LlamaIndex's MockLLM), so it measures the pipeline, not a model. Served by uvicorn
like Canon.

Encoder ceiling. The same questions through the encoder `canon serve` builds from the
same settings (model and backend), in the benchmark process with no server: one at a
time, and in batches of 32; at the start and again right after each Canon level, with
its CPU ms per query (the 2 cores are shared, so wall-clock ceilings drift).

Clients. bench/loadgen.py: one asyncio process, one keep-alive connection per client,
closed loop, 2 s warm-up; each level reports the client's and the server's CPU ms per
request beside latency and throughput.

    .venv/bin/python bench/answer_bench.py --sizes 10000 100000 --duration 10 \
        --json bench/results/answer_bench.json
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import loadgen  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CLIENTS = (1, 8, 32)


# -------------------------------------------------------------------------- data


def build_base(home: Path) -> str:
    """Publish the sample corpus into `home`; return an answer-scoped key."""
    from sqlmodel import Session

    from canon.runtime import Runtime
    from canon.settings import Settings
    from evals.runner import publish_sample
    from governance import keys

    rt = Runtime(Settings(home=home))
    publish_sample(rt)
    with Session(rt.engine) as session:
        _key, secret = keys.create(session, name="bench", scopes=["answer"], created_by="bench")
    rt.close()
    return secret


def _open_shard(home: Path) -> Any:
    from retrieval.store import EdgeStore

    return EdgeStore(home / "index", 384)


def real_points(home: Path) -> list[tuple[np.ndarray, dict[str, Any]]]:
    import qdrant_edge as qe

    store = _open_shard(home)
    found: list[tuple[np.ndarray, dict[str, Any]]] = []
    offset: Any = None
    while True:
        records, offset = store._shard.scroll(
            qe.ScrollRequest(offset=offset, limit=1024, with_payload=True, with_vector=True)
        )
        for r in records:
            found.append((np.asarray(r.vector["dense"], dtype=np.float32), dict(r.payload)))
        if offset is None:
            break
    store.close()
    return found


def synthesize(
    real: list[tuple[np.ndarray, dict[str, Any]]], count: int, seed: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    from retrieval.text import sentences

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    split = [sentences(str(p.get("text", ""))) or [str(p.get("text", ""))] for _, p in real]
    vectors = np.empty((count, len(real[0][0])), dtype=np.float32)
    payloads: list[dict[str, Any]] = []
    for i in range(count):
        a, b = rng.randrange(len(real)), rng.randrange(len(real))
        parts = list(split[a])
        rng.shuffle(parts)
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(split[b]))
        mixed = 0.8 * real[a][0] + 0.2 * real[b][0] + nrng.normal(0, 0.02, len(real[a][0]))
        vectors[i] = mixed / np.linalg.norm(mixed)
        payloads.append(real[a][1] | {"text": " ".join(parts)})
    return vectors, payloads


def grow(home: Path, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> float:
    """Write synthetic points straight into the Edge shard, then build its HNSW index."""
    import qdrant_edge as qe

    from retrieval.sparse import SparseEncoder

    sparse = SparseEncoder()
    store = _open_shard(home)
    started = time.perf_counter()
    step = 2048
    for start in range(0, len(payloads), step):
        batch = []
        for vec, payload in zip(
            vectors[start : start + step].tolist(), payloads[start : start + step], strict=True
        ):
            sv = sparse.document(payload["text"])
            batch.append(
                qe.Point(
                    id=str(uuid.uuid4()),
                    vector={"dense": vec, "sparse": qe.SparseVector(sv.indices, sv.values)},
                    payload=payload,
                )
            )
        store._shard.update(qe.UpdateOperation.upsert_points(batch))
    store._shard.flush()
    store._shard.optimize()
    store.close()
    return time.perf_counter() - started


def save_naive(path: Path, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "vectors.npy", vectors)
    with (path / "nodes.jsonl").open("w") as f:
        for p in payloads:
            f.write(json.dumps({"text": p["text"], "article_id": p.get("article_id")}) + "\n")


# ------------------------------------------------------------------ naive server


def _embedder() -> Any:
    """The encoder exactly as `canon serve` builds it from the same settings (model, backend)."""
    from canon.runtime import Runtime
    from canon.settings import Settings

    return Runtime(Settings(query_cache_size=0)).embedder


def serve_naive(data: Path, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from llama_index.core import Settings as LiSettings
    from llama_index.core import VectorStoreIndex
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.schema import TextNode
    from pydantic import BaseModel, PrivateAttr

    from retrieval.embed import Embedder

    class Local(BaseEmbedding):
        _e: Embedder = PrivateAttr()

        def __init__(self, e: Embedder) -> None:
            super().__init__(model_name=e.model_name)
            self._e = e

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._e.embed([query])[0]]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_query_embedding(text)

    embed = Local(_embedder())
    LiSettings.llm = None
    LiSettings.embed_model = embed
    vectors = np.load(data / "vectors.npy").tolist()
    nodes = []
    with (data / "nodes.jsonl").open() as f:
        for line, vec in zip(f, vectors, strict=True):
            row = json.loads(line)
            nodes.append(
                TextNode(
                    text=row["text"], embedding=vec, metadata={"article_id": row["article_id"]}
                )
            )
    index = VectorStoreIndex(nodes=nodes, embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=5)
    engine = index.as_query_engine(similarity_top_k=5)
    app = FastAPI()

    class Body(BaseModel):
        question: str
        audience: str = "patient"

    @app.get("/readyz")
    def ready() -> dict[str, int]:
        return {"points": len(nodes)}

    @app.post("/v1/search")
    def search(body: Body) -> dict[str, Any]:
        hits = retriever.retrieve(body.question)
        return {"passages": [{"text": h.node.get_content(), "score": h.score} for h in hits]}

    @app.post("/v1/answer")
    def answer(body: Body) -> dict[str, Any]:
        response = engine.query(body.question)
        return {"answer": str(response), "sources": len(response.source_nodes)}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------- load


def encoder_ceiling(embedder: Any, questions: list[str], seconds: float) -> dict[str, float]:
    """The same questions through the same encoder, no server: one at a time, then in
    batches of 32. CPU ms per query counts all of this process's threads."""
    embedder.embed(questions[:32])
    single: list[float] = []
    cpu0, began = time.process_time(), time.perf_counter()
    i = 0
    while time.perf_counter() - began < seconds:
        t0 = time.perf_counter()
        embedder.embed([questions[i % len(questions)]])
        single.append((time.perf_counter() - t0) * 1000)
        i += 1
    single_qps = len(single) / (time.perf_counter() - began)
    single_cpu = (time.process_time() - cpu0) * 1000 / len(single)
    done = 0
    cpu0, began = time.process_time(), time.perf_counter()
    while time.perf_counter() - began < seconds:
        embedder.embed([questions[(done + k) % len(questions)] for k in range(32)])
        done += 32
    return {
        "single_ms_p50": round(statistics.median(single), 2),
        "single_qps": round(single_qps, 1),
        "single_cpu_ms": round(single_cpu, 2),
        "batch32_qps": round(done / (time.perf_counter() - began), 1),
        "batch32_cpu_ms": round((time.process_time() - cpu0) * 1000 / done, 2),
        "load_1min": os.getloadavg()[0],
    }


def measure(
    server: subprocess.Popen[bytes],
    port: int,
    endpoints: list[str],
    bodies: list[bytes],
    duration: float,
    headers: dict[str, str],
    ceiling: Callable[[], dict[str, float]] | None = None,
    clients: tuple[int, ...] = CLIENTS,
) -> dict[str, Any]:
    """Each endpoint at each client count; with `ceiling`, the encoder ceiling is measured
    again right after each level (the machine is shared, so it drifts)."""
    out: dict[str, Any] = {}
    for endpoint in endpoints:
        out[endpoint] = []
        for c in clients:
            level = loadgen.drive(
                port, endpoint, bodies, c, duration, headers, server_pid=server.pid
            )
            if ceiling is not None:
                level["encoder"] = ceiling()
            out[endpoint].append(level)
            print(json.dumps({endpoint: level}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--search-only", type=int, nargs="*", default=[])
    parser.add_argument(
        "--naive",
        type=int,
        nargs="*",
        default=None,
        help="sizes to run the naive pipeline at (default: --sizes)",
    )
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--naive-only", action="store_true", help="skip Canon (rerun the baseline)")
    parser.add_argument(
        "--ceiling-seconds", type=float, default=4.0, help="encoder ceiling after each level"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serve-naive", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_naive:
        serve_naive(args.serve_naive, args.port)
        return

    from evals.datasets import load as load_dataset

    golden = load_dataset("sample")
    questions = [q.question for q in golden]
    bodies = [
        json.dumps({"question": q.question, "audience": q.audience.value}).encode() for q in golden
    ]
    naive_sizes = set(args.sizes if args.naive is None else args.naive)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": os.getloadavg(),
        "runs": [],
    }
    embedder = _embedder()
    backend = getattr(embedder, "backend", "torch")
    results["encoder_model"] = f"{embedder.model_name} ({backend})"
    results["encoder"] = encoder_ceiling(embedder, questions, seconds=10)
    print(json.dumps({"encoder": results["encoder"]}), flush=True)

    def ceiling() -> dict[str, float]:
        return encoder_ceiling(embedder, questions, seconds=args.ceiling_seconds)

    with tempfile.TemporaryDirectory(prefix="canon-answer-bench-") as tmp:
        base = Path(tmp) / "base"
        secret = build_base(base)
        real = real_points(base)
        auth = {"Authorization": f"Bearer {secret}"}
        plan = [(n, True) for n in args.sizes] + [(n, False) for n in args.search_only]
        for size, with_answer in plan:
            home = Path(tmp) / f"n{size}"
            shutil.copytree(base, home)
            vectors, payloads = synthesize(real, size - len(real), seed=size)
            build_s = grow(home, vectors, payloads)
            run: dict[str, Any] = {
                "points": size,
                "synthetic": size - len(real),
                "build_seconds": round(build_s, 1),
            }
            endpoints = ["/v1/search", "/v1/answer"] if with_answer else ["/v1/search"]
            run["load_at_start"] = os.getloadavg()
            if not args.naive_only:
                port = loadgen.free_port()
                server = loadgen.start_canon(home, port)
                try:
                    loadgen.wait_ready(port, auth)
                    run["canon"] = measure(
                        server, port, endpoints, bodies, args.duration, auth, ceiling
                    )
                finally:
                    loadgen.stop(server)
            if size in naive_sizes:
                data = Path(tmp) / f"naive{size}"
                all_vectors = np.vstack([np.stack([v for v, _ in real]), vectors])
                save_naive(data, all_vectors, [p for _, p in real] + payloads)
                port = loadgen.free_port()
                cmd = [sys.executable, __file__, "--serve-naive", str(data), "--port", str(port)]
                server = loadgen.start(cmd, os.environ | {"HF_HUB_OFFLINE": "1"})
                try:
                    loadgen.wait_ready(port)
                    run["naive"] = measure(server, port, endpoints, bodies, args.duration, {})
                finally:
                    loadgen.stop(server)
                shutil.rmtree(data, ignore_errors=True)
            run["load_at_end"] = os.getloadavg()
            results["runs"].append(run)
            shutil.rmtree(home, ignore_errors=True)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
