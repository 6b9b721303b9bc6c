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

Filler text (`--filler`). By default (`sample`) the synthetic text reuses the 324 sample
chunks' sentences, so the whole index has their vocabulary: a golden question's term
occurs in about 3.5% of the points, far more than in a real corpus of that size.
`--filler medquad` makes the text the same way from MedQuAD's answers (31,132 chunks of
whole sentences, real and varied medical vocabulary); the points' vectors and payloads
are exactly those of the default build, only the text (and so the BM25 vector) differs.
Both are synthetic: say which one a figure comes from (bench/README.md compares them).

Naive pipeline. LlamaIndex `VectorStoreIndex` with its default in-memory
`SimpleVectorStore`, the same embedding model, and the same passages as nodes with the
same vectors (the default `SentenceSplitter` leaves passages under 1024 tokens whole,
so nodes are inserted directly rather than re-embedding 100k texts); `/search` is
`as_retriever(similarity_top_k=5)`, `/answer` is `as_query_engine()` with no LLM
(LlamaIndex's MockLLM), so it measures the pipeline, not a model. Served by uvicorn
like Canon.

Encoder ceiling. The same questions through the encoder `canon serve` builds from the
same settings, three ways: one question per call in one stream, calls of 32, and one
stream per core at once; the best of the three (`qps`) is the ceiling (2026-12-01: before,
only one stream was measured, which on 2 cores is about half of what the encoder can do),
in the benchmark process with no server, at the start and again right after each Canon
level, with its CPU ms per query (wall-clock ceilings drift on a shared machine). Server
CPU counts the server's child processes (the query encoder runs in one).

Clients. bench/loadgen.py: one asyncio process, one keep-alive connection per client,
closed loop, 2 s warm-up; each level reports the client's and the server's CPU ms per
request beside latency and throughput.

Building. Synthetic points are made and written to the Edge shard in batches of 2,048
(only the sizes that also run the naive baseline hold them all), and the shard is
optimised (HNSW built) after every 250,000 points and at the end: one optimize for the
10k and 100k indexes, as before; four segments of about 250k for 1M, under the
segment size Qdrant's optimizer aims for on this machine (by qdrant-edge's source,
`max_segment_size` = indexing threads x 256,000 KB, about 340k of these 384-float
vectors on 2 cores; one 1M segment would be 3x that). Each build's timings,
peak RSS, point and segment counts, the shard's config and each segment's index config
go to bench-build.json in its home.

    .venv/bin/python bench/answer_bench.py --sizes 10000 100000 --duration 10 \
        --json bench/results/answer_bench.json
    # the same 100k points with MedQuAD's text as filler, kept
    .venv/bin/python bench/answer_bench.py --build-only --sizes 100000 --filler medquad \
        --keep /tmp/canon-100k-medquad
    # build once, keep, serve later (no naive baseline at 1M: brute force in Python)
    .venv/bin/python bench/answer_bench.py --build-only --sizes 1000000 --keep /tmp/canon-1m
    .venv/bin/python bench/answer_bench.py --home /tmp/canon-1m/n1000000 --smoke 10
    .venv/bin/python bench/answer_bench.py --home /tmp/canon-1m/n1000000 \
        --endpoints /v1/search --duration 10 --json bench/results/answer_bench_1m.json
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import loadgen  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CLIENTS = (1, 8, 32)
# Optimise (build HNSW) after every this many synthetic points: see grow_batches.
STAGE_POINTS = 250_000


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


def _open_shard(home: Path, dim: int | None = 384) -> Any:
    from retrieval.store import EdgeStore

    return EdgeStore(home / "index", dim)


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


def medquad_filler(max_words: int = 150) -> list[list[str]]:
    """MedQuAD's answers (shared/data/medquad, CC BY 4.0) cut into runs of whole sentences
    of at most about `max_words` words: each run is one filler chunk's sentences."""
    from evals.medquad import load_documents
    from retrieval.text import sentences

    chunks: list[list[str]] = []
    for doc in load_documents():
        for pair in doc.pairs:
            run: list[str] = []
            words = 0
            for sentence in sentences(pair.answer):
                n = len(sentence.split())
                if run and words + n > max_words:
                    chunks.append(run)
                    run, words = [], 0
                run.append(sentence)
                words += n
            if run:
                chunks.append(run)
    return chunks


def synthesize_batches(
    real: list[tuple[np.ndarray, dict[str, Any]]],
    count: int,
    seed: int,
    batch: int = 2048,
    filler: list[list[str]] | None = None,
) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """`count` synthetic points, `batch` at a time (the same points in the same order as
    `synthesize`), so a 1M build never holds them all.

    With `filler` (lists of sentences, e.g. `medquad_filler()`), each point's text is made
    the same way from those chunks instead of the sample corpus's, by a second random
    stream: vectors and payloads (but the text) are the same points as without it."""
    from retrieval.text import sentences

    rng = random.Random(seed)
    text_rng = random.Random(f"filler:{seed}")
    nrng = np.random.default_rng(seed)
    split = [sentences(str(p.get("text", ""))) or [str(p.get("text", ""))] for _, p in real]
    dim = len(real[0][0])

    def mixed_text(chunks: list[list[str]], r: random.Random, a: int, b: int) -> str:
        parts = list(chunks[a])
        r.shuffle(parts)
        parts.insert(r.randrange(len(parts) + 1), r.choice(chunks[b]))
        return " ".join(parts)

    for start in range(0, count, batch):
        n = min(batch, count - start)
        vectors = np.empty((n, dim), dtype=np.float32)
        payloads: list[dict[str, Any]] = []
        for i in range(n):
            a, b = rng.randrange(len(real)), rng.randrange(len(real))
            text = mixed_text(split, rng, a, b)
            if filler is not None:
                fa, fb = text_rng.randrange(len(filler)), text_rng.randrange(len(filler))
                text = mixed_text(filler, text_rng, fa, fb)
            mixed = 0.8 * real[a][0] + 0.2 * real[b][0] + nrng.normal(0, 0.02, dim)
            vectors[i] = mixed / np.linalg.norm(mixed)
            payloads.append(real[a][1] | {"text": text})
        yield vectors, payloads


def synthesize(
    real: list[tuple[np.ndarray, dict[str, Any]]],
    count: int,
    seed: int,
    filler: list[list[str]] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """All of `synthesize_batches` at once (the naive baseline needs every vector)."""
    batches = list(synthesize_batches(real, count, seed, filler=filler))
    if not batches:
        return np.empty((0, len(real[0][0])), dtype=np.float32), []
    return np.vstack([v for v, _ in batches]), [p for _, ps in batches for p in ps]


def _rss_mb() -> dict[str, int]:
    """This process's resident set now and its peak (VmHWM), in MB."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            found[name] = int(value.split()[0]) // 1024
    return found


def _reset_peak_rss() -> None:
    """Restart VmHWM from the current RSS (Linux >= 4.0), so each build reports its own."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def grow(home: Path, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> float:
    """Write synthetic points straight into the Edge shard, then build its HNSW index;
    the seconds that took (the points already synthesised)."""
    step = 2048
    batches = (
        (vectors[start : start + step], payloads[start : start + step])
        for start in range(0, len(payloads), step)
    )
    return float(grow_batches(home, batches)["build_seconds"])


def grow_batches(
    home: Path,
    batches: Iterable[tuple[np.ndarray, list[dict[str, Any]]]],
    stage: int = STAGE_POINTS,
) -> dict[str, Any]:
    """Upsert synthetic points into the home's Edge shard batch by batch as they are made,
    running `EdgeShard.optimize()` (HNSW build) after every `stage` points and once at the
    end; up to `stage` points, that is one optimize at the end, as before.

    Returns the seconds spent making points (synthesis, in the batches' generator),
    writing them (BM25 vector, `upsert_points`) and optimising; `build_seconds` is
    writing plus optimising (what earlier runs reported); and each optimize's seconds,
    segment count and the RSS after it."""
    import qdrant_edge as qe

    from retrieval.sparse import SparseEncoder

    sparse = SparseEncoder()
    store = _open_shard(home)
    shard = store._shard
    synth_s = upsert_s = optimize_s = 0.0
    optimizes: list[dict[str, Any]] = []
    written = since_optimize = 0

    def optimize() -> float:
        t0 = time.perf_counter()
        shard.flush()
        shard.optimize()
        took = time.perf_counter() - t0
        optimizes.append(
            {
                "points_written": written,
                "seconds": round(took, 1),
                "segments": shard.info().segments_count,
                "rss_mb": _rss_mb()["VmRSS"],
            }
        )
        print(json.dumps({"optimized": optimizes[-1]}), file=sys.stderr, flush=True)
        return took

    iterator = iter(batches)
    while True:
        t0 = time.perf_counter()
        item = next(iterator, None)
        synth_s += time.perf_counter() - t0
        if item is None:
            break
        vectors, payloads = item
        t0 = time.perf_counter()
        points = []
        for vec, payload in zip(vectors.tolist(), payloads, strict=True):
            sv = sparse.document(payload["text"])
            points.append(
                qe.Point(
                    id=str(uuid.uuid4()),
                    vector={"dense": vec, "sparse": qe.SparseVector(sv.indices, sv.values)},
                    payload=payload,
                )
            )
        shard.update(qe.UpdateOperation.upsert_points(points))
        written += len(points)
        since_optimize += len(points)
        upsert_s += time.perf_counter() - t0
        if since_optimize >= stage:
            optimize_s += optimize()
            since_optimize = 0
    if since_optimize or not optimizes:
        optimize_s += optimize()
    store.close()
    return {
        "synth_seconds": round(synth_s, 1),
        "upsert_seconds": round(upsert_s, 1),
        "optimize_seconds": round(optimize_s, 1),
        "build_seconds": round(upsert_s + optimize_s, 1),
        "stage_points": stage,
        "optimizes": optimizes,
    }


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


def encoder_ceiling(embedder: Any, questions: list[str], seconds: float) -> dict[str, Any]:
    """The encoder alone on the same questions: one stream, calls of 32, and one stream per
    core at once; `qps` is the best of the three (see `loadgen.encoder_ceiling`)."""
    return loadgen.encoder_ceiling(embedder, questions, seconds / 3)


def measure(
    server: subprocess.Popen[bytes],
    port: int,
    endpoints: list[str],
    bodies: list[bytes],
    duration: float,
    headers: dict[str, str],
    ceiling: Callable[[], dict[str, Any]] | None = None,
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


def bench_key(home: Path) -> str:
    """A new `answer`-scoped key in the home's database (a kept home is served again
    later, and a key's secret is stored only as a hash)."""
    from sqlmodel import Session

    from canon.runtime import Runtime
    from canon.settings import Settings
    from governance import keys

    rt = Runtime(Settings(home=home))
    with Session(rt.engine) as session:
        _key, secret = keys.create(session, name="bench", scopes=["answer"], created_by="bench")
    rt.close()
    return secret


def describe_index(home: Path) -> dict[str, Any]:
    """What was built: points, segments, the shard's stored config and each segment's
    index config (HNSW m / ef_construct, storage), size on disk, the engine's version."""
    from importlib.metadata import version

    shard_dir = home / "index"
    store = _open_shard(home, None)
    try:
        info = store._shard.info()
        points, segments = store.count(), info.segments_count
    finally:
        store.close()
    indexes: dict[str, int] = {}
    for seg in sorted((shard_dir / "segments").glob("*/segment.json")):
        config = json.loads(seg.read_text())["config"]
        dense = config["vector_data"]["dense"]
        key = json.dumps(
            {
                "index": dense["index"],
                "storage": dense["storage_type"],
                "quantization": dense.get("quantization_config"),
                "sparse_index": config["sparse_vector_data"]["sparse"]["index"]["index_type"],
                "payload": config["payload_storage_type"],
            },
            sort_keys=True,
        )
        indexes[key] = indexes.get(key, 0) + 1
    disk = sum(f.stat().st_blocks * 512 for f in shard_dir.rglob("*") if f.is_file())
    return {
        "points": points,
        "segments": segments,
        "edge_config": json.loads((shard_dir / "edge_config.json").read_text()),
        "segment_configs": [{"segments": n, **json.loads(k)} for k, n in indexes.items()],
        "index_disk_mb": round(disk / 2**20),
        "qdrant_edge_py": version("qdrant-edge-py"),
    }


def build_home(
    base: Path,
    real: list[tuple[np.ndarray, dict[str, Any]]],
    home: Path,
    size: int,
    stage: int,
    keep_points: bool,
    filler: str = "sample",
) -> tuple[dict[str, Any], tuple[np.ndarray, list[dict[str, Any]]] | None]:
    """Copy the published base to `home` and grow it to `size` points. With
    `keep_points` (the naive baseline needs them) the synthetic points are made first
    and returned; otherwise they are made and written batch by batch. The figures are
    also written to `home`/bench-build.json."""
    shutil.copytree(base, home)
    count = size - len(real)
    texts = medquad_filler() if filler == "medquad" else None
    load_before, cpu0 = os.getloadavg(), time.process_time()
    _reset_peak_rss()
    kept: tuple[np.ndarray, list[dict[str, Any]]] | None = None
    synth_s = 0.0
    if keep_points:
        t0 = time.perf_counter()
        kept = synthesize(real, count, seed=size, filler=texts)
        synth_s = time.perf_counter() - t0
        vectors, payloads = kept
        batches: Iterable[tuple[np.ndarray, list[dict[str, Any]]]] = (
            (vectors[i : i + 2048], payloads[i : i + 2048]) for i in range(0, count, 2048)
        )
    else:
        batches = synthesize_batches(real, count, seed=size, filler=texts)
    figures = grow_batches(home, batches, stage=stage)
    figures["synth_seconds"] = round(figures["synth_seconds"] + synth_s, 1)
    record: dict[str, Any] = {
        "points": size,
        "synthetic": count,
        "filler": filler,
        "seed": size,
        "built": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **figures,
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "peak_rss_mb": _rss_mb()["VmHWM"],
        "nice": os.nice(0),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "index": describe_index(home),
    }
    (home / "bench-build.json").write_text(json.dumps(record, indent=2))
    print(json.dumps({"built": str(home), **record}), flush=True)
    return record, kept


def smoke(port: int, auth: dict[str, str], golden: list[Any], n: int) -> dict[str, Any]:
    """A handful of /v1/search requests, one at a time: does the index answer with live
    passages, and roughly how fast. A smoke check, not the benchmark."""
    import urllib.request

    rows = []
    for q in golden[:n]:
        body = json.dumps({"question": q.question, "audience": q.audience.value}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/search",
            data=body,
            headers=auth | {"Content-Type": "application/json"},
        )
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.loads(response.read())
        ms = (time.perf_counter() - t0) * 1000
        passages = reply.get("passages", [])
        rows.append(
            {
                "question": q.question,
                "ms": round(ms, 1),
                "passages": len(passages),
                "top": [(p.get("article_id"), p.get("version")) for p in passages[:3]],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {"requests": rows, "ms": sorted(r["ms"] for r in rows)}


def server_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


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
    parser.add_argument(
        "--stage-points",
        type=int,
        default=STAGE_POINTS,
        help="optimise the shard after every N synthetic points (see grow_batches)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="build each home in DIR/n<size> and keep it"
    )
    parser.add_argument(
        "--filler",
        choices=["sample", "medquad"],
        default="sample",
        help="text of the synthetic points: the sample corpus's chunks reshuffled (its 324 "
        "chunks' vocabulary: long posting lists) or MedQuAD's answers (same vectors)",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build the homes (with --keep) and stop"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="measure Canon on a home kept by --keep (no build, no naive baseline)",
    )
    parser.add_argument(
        "--endpoints",
        nargs="+",
        choices=["/v1/search", "/v1/answer"],
        default=["/v1/search", "/v1/answer"],
        help="with --home: the endpoints to measure",
    )
    parser.add_argument(
        "--smoke",
        type=int,
        default=0,
        help="with --home: send N golden questions to /v1/search one at a time and stop",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--serve-naive", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_naive:
        serve_naive(args.serve_naive, args.port)
        return
    if args.build_only and args.keep is None:
        parser.error("--build-only needs --keep DIR")
    if args.home is not None and not (args.home / "bench-build.json").is_file():
        parser.error(f"--home {args.home}: no bench-build.json (build it with --keep)")

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

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))

    if args.build_only:
        with tempfile.TemporaryDirectory(prefix="canon-answer-bench-") as tmp:
            base = Path(tmp) / "base"
            build_base(base)
            real = real_points(base)
            for size in [*args.sizes, *args.search_only]:
                home = args.keep / f"n{size}"
                if home.exists():
                    raise SystemExit(f"{home} exists: remove it or keep another DIR")
                record, _ = build_home(
                    base, real, home, size, args.stage_points, False, args.filler
                )
                results["runs"].append({"home": str(home), "build": record})
                save()
        print(json.dumps(results, indent=2))
        return

    if args.home is not None and args.smoke:
        secret = bench_key(args.home)
        auth = {"Authorization": f"Bearer {secret}"}
        port = loadgen.free_port()
        t0 = time.perf_counter()
        server = loadgen.start_canon(args.home, port)
        try:
            loadgen.wait_ready(port, auth)
            ready_s = time.perf_counter() - t0
            check = smoke(port, auth, golden, args.smoke)
            check["server_ready_seconds"] = round(ready_s, 1)
            check["server_rss_mb"] = server_rss_mb(server.pid)
        finally:
            loadgen.stop(server)
        results["smoke"] = {"home": str(args.home), **check}
        save()
        print(json.dumps(results, indent=2))
        return

    embedder = _embedder()
    backend = getattr(embedder, "backend", "torch")
    results["encoder_model"] = f"{embedder.model_name} ({backend})"
    results["encoder"] = encoder_ceiling(embedder, questions, seconds=10)
    print(json.dumps({"encoder": results["encoder"]}), flush=True)

    def ceiling() -> dict[str, Any]:
        return encoder_ceiling(embedder, questions, seconds=args.ceiling_seconds)

    if args.home is not None:
        build = json.loads((args.home / "bench-build.json").read_text())
        secret = bench_key(args.home)
        auth = {"Authorization": f"Bearer {secret}"}
        run: dict[str, Any] = {
            "points": build["points"],
            "synthetic": build["synthetic"],
            "home": str(args.home),
            "build": build,
            "naive": "not run: a kept home has no naive copy (--home)",
            "load_at_start": os.getloadavg(),
        }
        port = loadgen.free_port()
        server = loadgen.start_canon(args.home, port)
        try:
            loadgen.wait_ready(port, auth)
            run["server_rss_mb_ready"] = server_rss_mb(server.pid)
            run["canon"] = measure(
                server, port, args.endpoints, bodies, args.duration, auth, ceiling
            )
            run["server_rss_mb_end"] = server_rss_mb(server.pid)
        finally:
            loadgen.stop(server)
        run["load_at_end"] = os.getloadavg()
        results["runs"].append(run)
        save()
        print(json.dumps(results, indent=2))
        return

    with tempfile.TemporaryDirectory(prefix="canon-answer-bench-") as tmp:
        base = Path(tmp) / "base"
        secret = build_base(base)
        real = real_points(base)
        auth = {"Authorization": f"Bearer {secret}"}
        plan = [(n, True) for n in args.sizes] + [(n, False) for n in args.search_only]
        for size, with_answer in plan:
            home = (args.keep or Path(tmp)) / f"n{size}"
            if home.exists():
                raise SystemExit(f"{home} exists: remove it or keep another DIR")
            record, kept = build_home(
                base, real, home, size, args.stage_points, size in naive_sizes, args.filler
            )
            run = {
                "points": size,
                "synthetic": size - len(real),
                "build_seconds": record["build_seconds"],
                "build": record,
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
            if kept is not None:
                vectors, payloads = kept
                data = Path(tmp) / f"naive{size}"
                all_vectors = np.vstack([np.stack([v for v, _ in real]), vectors])
                save_naive(data, all_vectors, [p for _, p in real] + payloads)
                del kept, vectors, payloads
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
            if args.keep is None:
                shutil.rmtree(home, ignore_errors=True)
            save()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
