"""Memory Qdrant Edge itself holds for a corpus's points, without the rest of the ingest.

    .venv/bin/python bench/edge_memory.py /tmp/canon-perqa/home/canon.db --json out.json

Takes the published versions of an ingested home (a copy of its canon.db; every vector
must be in its embedding cache, so no model is loaded), builds their points with
`IndexSync.points` and holds them all, then upserts them into a fresh Edge shard in
batches of 200 versions, each followed by `maintain()` (as `publish_paths` does through
`IndexSync.add_versions`: an HNSW build once enough points are unindexed), recording
RssAnon and RssFile (see ingest_bench.status_mb) as it goes. What anon grows after the
points are built is what the shard keeps in this process; file is its mmapped segments.
"""

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import status_mb, trim_heap
from sqlmodel import Session, create_engine

from governance import service
from governance.models import Article, ArticleVersion
from ingest.index import IndexSync
from retrieval.sparse import SparseEncoder
from retrieval.store import EdgeStore, PointRecord


class CacheOnly:
    """Stands in for the embedder: every passage's vector must come from the cache."""

    dim = 384

    def __init__(self, cache_key: str) -> None:
        self.cache_key = cache_key

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise RuntimeError(f"{len(texts)} passages are not in the embedding cache")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="canon.db of an ingested home (read only)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="canon-edge-memory-"))
    with sqlite3.connect(f"file:{args.db}?mode=ro", uri=True) as src:
        with sqlite3.connect(work / "canon.db") as copy:
            src.backup(copy)
        key = src.execute("SELECT model FROM embeddingcache LIMIT 1").fetchone()[0]
    engine = create_engine(f"sqlite:///{work / 'canon.db'}")
    rows: list[dict[str, Any]] = []

    def row(stage: str, points: int) -> None:
        rows.append({"stage": stage, "points": points, **status_mb()})
        print(json.dumps(rows[-1]), file=sys.stderr)

    row("start", 0)
    batches: list[list[PointRecord]] = []
    sync = IndexSync(None, CacheOnly(key), SparseEncoder(), engine)  # type: ignore[arg-type]
    with Session(engine) as session:
        ids = sorted(service.published_view(session))
        for start in range(0, len(ids), 200):
            batch: list[PointRecord] = []
            for version_id in ids[start : start + 200]:
                version = session.get(ArticleVersion, version_id)
                assert version is not None
                article = session.get(Article, version.article_id)
                assert article is not None
                batch += sync.points(article, version, service.chunks_of(session, version_id))
            batches.append(batch)
    total = sum(len(b) for b in batches)
    trim_heap()
    row("points built and held", total)
    store = EdgeStore(work / "index", CacheOnly.dim)
    row("shard created", 0)
    done = 0
    optimized = 0
    for i, batch in enumerate(batches):
        store.upsert(batch)
        done += len(batch)
        if store.maintain():  # as IndexSync.add_versions: HNSW once enough is unindexed
            optimized += 1
            row("upserted, then optimized", done)
        elif i % 10 == 9:
            row("upserted", done)
    trim_heap()
    row("all upserted, heap trimmed", done)
    batches.clear()
    trim_heap()
    row("points list freed", done)
    assert store.count() == total
    store.close()
    trim_heap()
    row("shard closed", done)
    engine.dispose()
    shutil.rmtree(work, ignore_errors=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
