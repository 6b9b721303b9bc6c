"""Ingest throughput on MedQuAD: first ingest, unchanged re-ingest, 5% changed re-ingest.

"Ingest" here is what `scripts/demo.sh` does to a folder: parse, chunk, store draft
versions, approve, embed, index and publish everything (ingest.bootstrap.publish_paths).
The encoder is the floor, so the same passages are also embedded alone, with the
same batching, and the first ingest is reported against that encoder-only time.

    .venv/bin/python bench/ingest_bench.py --limit 500            # a quick subset
    .venv/bin/python bench/ingest_bench.py --json bench/results/ingest.json   # all of MedQuAD
    .venv/bin/python bench/ingest_bench.py --per-qa --memory   # ~16k files: is RSS flat?

`--per-qa` writes one file per question-answer pair (16,407 files) instead of one per
document; `--memory` runs only the first ingest and records RSS against the files
ingested, passages embedded and versions published, to show whether memory stays flat.
Beside RSS every sample has its parts from /proc/self/status: `RssAnon` (heap: Python
objects, malloc arenas, native libraries' buffers), `RssFile` (pages of mapped files:
shared libraries, the model, Qdrant Edge's mmapped segments; page cache the kernel can
drop) and `RssShmem`. `--tracemalloc` (with `--memory`) also traces Python allocations
from the end of parsing and records, for each later step (review, embed, publish), the
top 10 lines by memory still held at the step's end against its start; it slows those
steps and its own bookkeeping shows up in RssAnon, so use it on a smaller `--limit` run.

MedQuAD: Ben Abacha & Demner-Fushman, BMC Bioinformatics 2019, CC BY 4.0.
"""

import argparse
import ctypes
import dataclasses
import gc
import json
import linecache
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from sqlmodel import Session, col, func, select

from canon.runtime import Runtime
from canon.settings import Settings
from evals import medquad
from governance import service
from governance.models import ArticleVersion, Chunk, EmbeddingCache, Status
from ingest.bootstrap import publish_paths
from ingest.index import doctor, embed_text
from ingest.pipeline import FileResult, IngestReport, default_workers

# /proc/self/status fields (kB) and the names they get here
STATUS_FIELDS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}


def status_mb() -> dict[str, float]:
    """This process's VmRSS and its three parts, in MB, from /proc/self/status.

    anon: heap (what grows if we keep objects); file: mapped files' resident pages
    (libraries, model weights, Qdrant Edge's mmapped segments), which the kernel can
    drop and read back; shmem: shared memory. Empty where there is no /proc.
    """
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in STATUS_FIELDS:
                    out[STATUS_FIELDS[key]] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        return {}
    return out


def trim_heap() -> bool:
    """Collect garbage and hand glibc's free heap pages back to the kernel (malloc_trim),
    so what RssAnon still holds afterwards is memory in use, not freed-but-kept."""
    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


class RssSampler:
    """Resident memory every `every` seconds, to show whether it grows with the corpus."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.parts: list[dict[str, float]] = []  # status_mb() beside each sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._proc = psutil.Process()
        self._start = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._proc.memory_info().rss
            self.samples.append((time.perf_counter() - self._start, rss))
            self.parts.append(status_mb())
            self._stop.wait(self.every)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def quartiles_mb(self) -> list[float]:
        """RSS (MB) at 25, 50, 75 and 100% of the phase's duration."""
        if not self.samples:
            return []
        n = len(self.samples)
        return [round(self.samples[min(n - 1, (n * q) // 4)][1] / 2**20, 1) for q in (1, 2, 3, 4)]

    def part_quartiles_mb(self, part: str) -> list[float]:
        """RssAnon/RssFile/RssShmem (MB) at 25, 50, 75 and 100% of the phase."""
        n = len(self.parts)
        if not n or part not in self.parts[0]:
            return []
        return [self.parts[min(n - 1, (n * q) // 4)][part] for q in (1, 2, 3, 4)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def phase(results: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    entry: dict[str, Any] = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    start, cpu = time.perf_counter(), time.process_time()
    with RssSampler() as sampler:
        yield entry
    entry["seconds"] = round(time.perf_counter() - start, 3)
    # CPU time of this process (all threads): what the work cost, whatever else ran beside it
    entry["cpu_seconds"] = round(time.process_time() - cpu, 3)
    entry["load_after"] = [round(x, 2) for x in os.getloadavg()]
    entry["rss_mb_quartiles"] = sampler.quartiles_mb()
    entry["peak_rss_mb"] = round(peak_rss_mb(), 1)
    for part in ("anon", "file", "shmem"):
        entry[f"rss_{part}_mb_quartiles"] = sampler.part_quartiles_mb(part)
    if sampler.parts and "anon" in sampler.parts[0]:
        entry["peak_rss_anon_mb"] = max(p["anon"] for p in sampler.parts)
    results[name] = entry


def run_ingest(
    rt: Runtime,
    corpus: Path,
    entry: dict[str, Any],
    on_file: Callable[[FileResult], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> IngestReport:
    embedded = rt.sync.embedded
    timings: dict[str, float] = {}
    report = publish_paths(
        rt.engine,
        rt.sync,
        [corpus],
        timings=timings,
        on_file=on_file,
        on_step=on_step,
        budget=rt.chunk_budget,
        workers=rt.settings.ingest_workers or None,  # as `canon ingest` parses
    )
    summary = report.summary()
    chunks = sum(f.chunks for f in report.files)  # of new versions: unchanged files report 0
    entry.update(
        summary=summary,
        chunks_in_new_versions=chunks,
        passages_embedded=rt.sync.embedded - embedded,
        passages_from_cache=chunks - (rt.sync.embedded - embedded),
        steps_seconds={k: round(v, 3) for k, v in timings.items()},
    )
    return report


def rates(entry: dict[str, Any], files: int, chunks: int) -> None:
    seconds = entry["seconds"]
    entry["files_per_s"] = round(files / seconds, 1)
    entry["chunks_per_s"] = round(chunks / seconds, 1)


def change_files(corpus: Path, fraction: float, seed: int) -> list[Path]:
    """Append a sentence to the last section of a deterministic sample of articles."""
    files = sorted(p for p in corpus.rglob("*.md") if not p.name.startswith("_"))
    chosen = random.Random(seed).sample(files, max(1, round(len(files) * fraction)))
    for path in chosen:
        text = path.read_text("utf-8").rstrip("\n")
        path.write_text(text + "\n\nThis page was reviewed again for the ingest benchmark.\n")
    return chosen


def published_texts(rt: Runtime) -> list[str]:
    """Exactly the passages the first ingest embedded: every published chunk's model input."""
    texts: list[str] = []
    with Session(rt.engine) as session:
        live = service.published_view(session)
        titles = {vid: v.title for vid, v in live.items()}
        for chunk in session.exec(
            select(Chunk).where(col(Chunk.version_id).in_(list(live))).order_by(col(Chunk.id))
        ).all():
            texts.append(embed_text(titles[chunk.version_id], chunk.section, chunk.text))
    return texts


def encoder_only(rt: Runtime, texts: list[str], batch: int) -> float:
    """The same passages through the same embedder, in the same warm-batch groups."""
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        rt.embedder.embed(texts[i : i + batch])
    return time.perf_counter() - start


def per_qa(docs: list[medquad.MedDoc]) -> list[medquad.MedDoc]:
    """One document per question-answer pair (its own file and article)."""
    return [
        dataclasses.replace(d, file=f"{d.file}-q{i:02d}", pairs=(pair,))
        for d in docs
        for i, pair in enumerate(d.pairs, start=1)
    ]


class ProgressRss:
    """RSS (and RssAnon/RssFile/RssShmem) against progress: every `every` files ingested,
    at the end of each step of `publish_paths`, and every 5 s from a background thread
    with the passages embedded and versions published so far."""

    STEPS = ("ingest", "review", "embed", "publish")

    def __init__(self, rt: Runtime, every: int = 500) -> None:
        self.rt = rt
        self.every = every
        self.files = 0
        self.step = self.STEPS[0]  # the step of publish_paths running now
        self.rows: list[dict[str, Any]] = []
        self._proc = psutil.Process()
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _row(self, stage: str) -> dict[str, Any]:
        with Session(self.rt.engine) as session:
            published = session.exec(
                select(func.count())
                .select_from(ArticleVersion)
                .where(ArticleVersion.status == Status.published)
            ).one()
        parts = status_mb()
        return {
            "t": round(time.perf_counter() - self._start, 1),
            "stage": stage,
            "step": self.step,
            "files": self.files,
            "embedded": self.rt.sync.embedded,
            "published": published,
            "rss_mb": round(self._proc.memory_info().rss / 2**20, 1),
            **{f"rss_{part}_mb": mb for part, mb in parts.items() if part != "rss"},
        }

    def on_file(self, _: FileResult) -> None:
        self.files += 1
        if self.files % self.every == 0:
            self.rows.append(self._row("ingest"))

    def mark(self, stage: str, *, step: str | None = None) -> None:
        if step is not None:
            self.step = step
        self.rows.append(self._row(stage))

    def on_step(self, step: str) -> None:
        """`publish_paths` finished `step`: a row for its end; later rows name the next."""
        self.rows.append(self._row(f"{step} done"))
        if step in self.STEPS[:-1]:
            self.step = self.STEPS[self.STEPS.index(step) + 1]

    def _run(self) -> None:
        while not self._stop.wait(5.0):
            self.rows.append(self._row("tick"))

    def __enter__(self) -> "ProgressRss":
        self.rows.append(self._row("start"))
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.rows.append(self._row("end"))


class StepHeap:
    """tracemalloc from the end of parsing: per later step, the top lines by memory
    allocated during the step and still held at its end."""

    def __init__(self, top: int = 10, frames: int = 8) -> None:
        self.top = top
        self.frames = frames
        self.steps: dict[str, Any] = {}
        self._before: tracemalloc.Snapshot | None = None

    def on_step(self, step: str) -> None:
        if self._before is None:  # parsing ended: start tracing what the rest allocates
            tracemalloc.start(self.frames)
            self._before = self._snapshot()
            return
        after = self._snapshot()
        current, peak = tracemalloc.get_traced_memory()
        diff = after.compare_to(self._before, "lineno")
        by_trace = after.compare_to(self._before, "traceback")
        self.steps[step] = {
            "traced_mb_at_end": round(current / 2**20, 2),
            "traced_peak_mb": round(peak / 2**20, 2),
            "net_mb": round(sum(d.size_diff for d in diff) / 2**20, 2),
            "top_lines": [
                {
                    "where": str(d.traceback[0]),
                    "size_diff_kb": round(d.size_diff / 1024, 1),
                    "count_diff": d.count_diff,
                }
                for d in diff[: self.top]
            ],
            "top_traceback": [
                # file:line only: format() would read source lines into linecache, which
                # the next step's diff would then count
                {
                    "size_diff_kb": round(d.size_diff / 1024, 1),
                    "frames": [str(f) for f in d.traceback],
                }
                for d in by_trace[:3]
            ],
        }
        tracemalloc.reset_peak()
        self._before = after

    def _snapshot(self) -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, linecache.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
            ]
        )

    def stop(self) -> None:
        if tracemalloc.is_tracing():
            tracemalloc.stop()


def memory_run(
    rt: Runtime, corpus: Path, written: int, results: dict[str, Any], *, trace_heap: bool = False
) -> None:
    heap = StepHeap() if trace_heap else None
    with phase(results, "first") as entry, ProgressRss(rt) as trace:

        def on_step(step: str) -> None:
            trace.on_step(step)
            if heap is not None:
                heap.on_step(step)

        run_ingest(rt, corpus, entry, on_file=trace.on_file, on_step=on_step)
    if heap is not None:
        heap.stop()
        results["tracemalloc"] = heap.steps
    # What is still held once garbage is collected and free heap pages are returned
    trace.mark("trimmed" if trim_heap() else "gc only", step="after")
    rates(results["first"], written, results["first"]["chunks_in_new_versions"])
    results["rss_trace"] = trace.rows
    ingest_rows = [r for r in trace.rows if r["stage"] == "ingest"]
    if len(ingest_rows) >= 2:
        first, last = ingest_rows[0], ingest_rows[-1]
        results["rss_growth_during_parse_mb_per_1000_files"] = round(
            1000 * (last["rss_mb"] - first["rss_mb"]) / max(1, last["files"] - first["files"]), 2
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="MedQuAD documents (all if unset)")
    parser.add_argument("--change", type=float, default=0.05, help="fraction of files changed")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the scratch home")
    parser.add_argument("--per-qa", action="store_true", help="one file per QA pair")
    parser.add_argument("--memory", action="store_true", help="first ingest only, RSS traced")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="with --memory: heap diff (top 10 lines) per step after parsing; slow",
    )
    parser.add_argument(
        "--seed-cache",
        type=Path,
        default=None,
        help="copy the embedding cache of this canon.db first (same passages)",
    )
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="canon-ingest-bench-"))
    if work.exists():
        shutil.rmtree(work)
    corpus, home = work / "corpus", work / "home"
    docs = medquad.load_documents(limit=args.limit)
    written = medquad.write_corpus(corpus, per_qa(docs) if args.per_qa else docs)
    settings = Settings(home=home, database_url=args.database_url)
    rt = Runtime(settings)
    seeded = seed_cache(rt, args.seed_cache) if args.seed_cache else 0
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "documents": written,
        "cpus": os.cpu_count(),
        "database": "sqlite" if args.database_url is None else "postgresql",
        "index": "qdrant-edge" if settings.qdrant_url is None else "qdrant-server",
        "chunk_tokens": settings.chunk_tokens,
        "ingest_workers": settings.ingest_workers or default_workers(),
        "warm_batch": rt.sync.warm_batch,
        "embed_batch": rt.embedder.batch_size,
        "encoder": rt.embedder.cache_key,
        "layout": "one file per QA pair" if args.per_qa else "one file per document",
        "cache_rows_seeded": seeded,
    }
    start = time.perf_counter()
    rt.embedder.embed(["warm-up"])
    results["model_load_seconds"] = round(time.perf_counter() - start, 2)

    step: Callable[[str], None] = lambda name: print(f"[ingest-bench] {name}", file=sys.stderr)  # noqa: E731
    if args.memory:
        step(f"first ingest of {written} files, RSS traced")
        memory_run(rt, corpus, written, results, trace_heap=args.tracemalloc)
        return finish(rt, args, work, results, [])
    step(f"first ingest of {written} documents")
    with phase(results, "first") as entry:
        first = run_ingest(rt, corpus, entry)
    chunks = entry["chunks_in_new_versions"]
    rates(entry, written, chunks)

    step("encoder only, same passages")
    texts = published_texts(rt)
    with phase(results, "encoder_only") as enc:
        enc["passages"] = len(texts)
        seconds = encoder_only(rt, texts, rt.sync.warm_batch)
    enc["passages_per_s"] = round(len(texts) / seconds, 1)
    first_entry = results["first"]
    first_entry["over_encoder"] = round(first_entry["seconds"] / enc["seconds"], 3)
    first_entry["over_encoder_cpu"] = round(first_entry["cpu_seconds"] / enc["cpu_seconds"], 3)

    step("unchanged re-ingest")
    with phase(results, "unchanged") as entry:
        run_ingest(rt, corpus, entry)
    rates(entry, written, chunks)
    results["unchanged"]["speedup_vs_first"] = round(
        results["first"]["seconds"] / entry["seconds"], 1
    )

    step(f"re-ingest with {args.change:.0%} of files changed")
    changed = change_files(corpus, args.change, seed=7)
    with phase(results, "changed") as entry:
        entry["files_changed"] = len(changed)
        run_ingest(rt, corpus, entry)
    rates(entry, written, chunks)

    return finish(rt, args, work, results, [f.error for f in first.failed][:20])


def seed_cache(rt: Runtime, db: Path) -> int:
    """Copy another home's embedding-cache rows for this encoder (keyed by text hash)."""
    import sqlite3

    key = rt.embedder.cache_key
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as src:
        rows = src.execute(
            "SELECT text_hash, model, vector FROM embeddingcache WHERE model = ?", (key,)
        ).fetchall()
    with Session(rt.engine) as session:
        for start in range(0, len(rows), 5000):
            session.add_all(
                EmbeddingCache(text_hash=h, model=m, vector=v)
                for h, m, v in rows[start : start + 5000]
            )
            session.commit()
    return len(rows)


def finish(
    rt: Runtime, args: argparse.Namespace, work: Path, results: dict[str, Any], failed: list[Any]
) -> dict[str, Any]:
    with Session(rt.engine) as session:
        health = doctor(session, rt.sync, repair=False)
    results["index_check"] = {
        "points": health.points,
        "published_versions": health.published_versions,
        "healthy": health.healthy,
    }
    results["failed_files"] = failed
    rt.close()
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
