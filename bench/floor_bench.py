"""The floor under any server: embed the question and run its index query, nothing else.

Issue #4 asks `/v1/search` at 32 clients and 100k chunks to serve at least 0.8x the
encoder's own ceiling. Every request must at least (1) embed its question with the
encoder and (2) run its hybrid query on the index. This measures how fast those two
steps alone go on this machine, with no HTTP, no framework, no auth, no catalog check
and no answer composition, so no server built from this encoder and this index can
serve more. Its ratio to the encoder ceiling is the best ratio any server could reach.

How, on a home kept by `bench/answer_bench.py --build-only --keep DIR` (the 100k index
the answer benchmark serves):
- One worker process per core, each with its own copy of the home (an Edge shard is
  opened by one process at a time), so nothing shares a GIL, a lock or a pipe: the most
  generous layout 2 cores allow.
- The workers take turns through the same modes on one shared clock, `--slot` seconds
  each, `--rounds` times: **encoder only** (each worker embeds one question per call on
  a one-thread session: the ceiling's "one stream per core", its best way on this
  machine), then the **floor** at each `--batches` size B (embed B questions the same
  way, build each query with `Retriever._query`, which is what `canon serve` sends:
  audience filter, limit, dense and BM25 prefetch, RRF; run them with one
  `EdgeStore.query_many`: ranked ids, then payload and vector of the first `top_k`).
  This machine's speed drifts by a third within minutes (the encoder ceiling moved
  409-604 q/s in one run), so a ratio of two measurements minutes apart says little;
  interleaved slots of a second put both sides under the same drift.
- Per mode: questions per second (the workers' rates added) and CPU ms per question,
  split into the encoder step and the index step (`time.process_time` of each worker:
  Edge's own threads count). `ratio` is floor over encoder-only throughput;
  `cpu_ratio` is the encoder's share of a question's CPU, the same bound counted in CPU.
- `loadgen.encoder_ceiling` (answer_bench's definition, best of three ways) runs before
  and after, in this process, as a cross-check that one stream per core is the best way.

    .venv/bin/python bench/answer_bench.py --build-only --sizes 100000 --keep /tmp/canon-100k
    .venv/bin/python bench/floor_bench.py --home /tmp/canon-100k/n100000 \
        --json bench/results/floor_bench.json
"""

import argparse
import json
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _questions() -> list[tuple[str, Any]]:
    from evals.datasets import load as load_dataset

    return [(q.question, q.audience) for q in load_dataset("sample")]


def _worker(
    home: str, modes: list[int], slot: float, rounds: int, offset: int, go: Any, out: Any
) -> None:
    """Cycle through `modes`, one `slot` of seconds each, `rounds` times, on a clock
    shared with the other workers (`go` carries its start): mode 0 embeds questions only
    (the ceiling's one stream per core); mode B > 0 embeds B questions and runs them as
    one batch of index queries (the floor)."""
    from canon.runtime import Runtime
    from canon.settings import Settings

    rt = Runtime(Settings(home=Path(home), query_cache_size=0))
    retriever, store = rt.retriever, rt.store
    encoder = rt.embedder._encoder
    questions = _questions()
    n = len(questions)
    # warm: the session, Edge's caches and the filter cache
    for text, audience in questions[:16]:
        vector = encoder.encode([text], 1)[0]
        query = retriever._query(text, vector, audience, (), 5, "hybrid")
        assert query is not None
        store.query_many([query])
    out.put("ready")
    go.wait()
    t0 = go.start_at
    tally = {m: {"done": 0, "wall": 0.0, "cpu": 0.0, "embed": 0.0, "query": 0.0} for m in modes}
    i = offset
    for k in range(rounds * len(modes)):
        mode = modes[k % len(modes)]
        slot_end = t0 + (k + 1) * slot
        while time.time() < slot_end - slot:  # the slot has not begun (a late previous one)
            time.sleep(0.0005)
        t = tally[mode]
        batch = max(mode, 1)
        last = 0.0  # the last batch's wall time: start none that would overrun the slot
        while time.time() + last < slot_end:
            w0, c0 = time.perf_counter(), time.process_time()
            picked = [questions[(i + j) % n] for j in range(batch)]
            vectors = [encoder.encode([text], 1)[0] for text, _ in picked]
            c1 = time.process_time()
            if mode:
                queries = [
                    retriever._query(text, vector, audience, (), 5, "hybrid")
                    for (text, audience), vector in zip(picked, vectors, strict=True)
                ]
                hits = store.query_many([q for q in queries if q is not None])
                assert len(hits) == batch and all(hits), "every golden question finds passages"
            c2 = time.process_time()
            t["done"] += batch
            last = time.perf_counter() - w0
            t["wall"] += last
            t["cpu"] += c2 - c0
            t["embed"] += c1 - c0
            t["query"] += c2 - c1
            i += batch
    out.put(tally)
    rt.close()


class _Go:
    """A start signal that carries the shared clock's origin."""

    def __init__(self, ctx: Any) -> None:
        self._event = ctx.Event()
        self._start = ctx.Value("d", 0.0)

    def set(self, start_at: float) -> None:
        self._start.value = start_at
        self._event.set()

    def wait(self) -> None:
        self._event.wait()

    @property
    def start_at(self) -> float:
        return float(self._start.value)


def interleaved(homes: list[Path], modes: list[int], slot: float, rounds: int) -> dict[int, Any]:
    """One worker process per home, all on one clock; per mode, questions per second
    summed over the workers and CPU ms per question (all the workers' threads)."""
    ctx = multiprocessing.get_context("spawn")
    out, go = ctx.Queue(), _Go(ctx)
    workers = [
        ctx.Process(target=_worker, args=(str(h), modes, slot, rounds, k * 97, go, out))
        for k, h in enumerate(homes)
    ]
    for w in workers:
        w.start()

    def collect(count: int) -> list[Any]:
        got: list[Any] = []
        while len(got) < count:
            try:
                got.append(out.get(timeout=1))
            except queue.Empty:
                dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise SystemExit(f"a floor worker died (exit codes {dead})") from None
        return got

    collect(len(workers))  # every worker has loaded its model and shard and warmed up
    go.set(time.time() + 0.5)
    tallies = collect(len(workers))
    for w in workers:
        w.join()
    results: dict[int, Any] = {}
    for mode in modes:
        parts = [t[mode] for t in tallies]
        done = sum(p["done"] for p in parts)
        results[mode] = {
            "qps": round(sum(p["done"] / p["wall"] for p in parts), 1),
            "questions": done,
            "cpu_ms": round(sum(p["cpu"] for p in parts) * 1000 / done, 3),
            "embed_cpu_ms": round(sum(p["embed"] for p in parts) * 1000 / done, 3),
            "query_cpu_ms": round(sum(p["query"] for p in parts) * 1000 / done, 3),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home kept by answer_bench")
    parser.add_argument("--slot", type=float, default=1.0, help="seconds in one mode at a time")
    parser.add_argument("--rounds", type=int, default=10, help="times through every mode")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--ceiling-seconds", type=float, default=6.0, help="loadgen's ceiling, before and after"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (args.home / "bench-build.json").is_file():
        parser.error(f"--home {args.home}: no bench-build.json (build it with answer_bench --keep)")
    if any(b < 1 for b in args.batches):
        parser.error("--batches: each batch holds at least 1 question")
    if args.workers < 1 or args.rounds < 1 or args.slot <= 0 or args.ceiling_seconds <= 0:
        parser.error("--workers and --rounds take at least 1; --slot and --ceiling-seconds > 0")

    from canon.runtime import Runtime
    from canon.settings import Settings

    build = json.loads((args.home / "bench-build.json").read_text())
    questions = [text for text, _ in _questions()]
    modes = [0, *args.batches]
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "home": str(args.home),
        "points": build["points"],
        "workers": args.workers,
        "slot_seconds": args.slot,
        "rounds": args.rounds,
        "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="canon-floor-") as tmp:
        homes = []
        for k in range(args.workers):
            copy = Path(tmp) / f"w{k}"
            shutil.copytree(args.home, copy)
            homes.append(copy)
        rt = Runtime(Settings(home=homes[0], query_cache_size=0))
        embedder = rt.embedder
        results["encoder_model"] = f"{embedder.model_name} ({embedder.backend})"
        # the ceiling as answer_bench defines it (best of three ways), as a cross-check
        # that one stream per core is the encoder's best way here
        results["ceiling_before"] = loadgen.encoder_ceiling(
            embedder, questions, args.ceiling_seconds / 3
        )
        print(json.dumps({"ceiling_before": results["ceiling_before"]}), flush=True)
        measured = interleaved(homes, modes, args.slot, args.rounds)
        results["ceiling_after"] = loadgen.encoder_ceiling(
            embedder, questions, args.ceiling_seconds / 3
        )
        rt.close()
    encoder_only = measured[0]
    results["encoder_only"] = encoder_only
    results["floor"] = [
        measured[b]
        | {
            "batch": b,
            "ratio": round(measured[b]["qps"] / encoder_only["qps"], 3),
            "cpu_ratio": round(measured[b]["embed_cpu_ms"] / measured[b]["cpu_ms"], 3),
        }
        for b in args.batches
    ]
    results["best_ratio"] = max(level["ratio"] for level in results["floor"])
    results["load_after"] = os.getloadavg()
    loadgen.write_json(args.json, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
