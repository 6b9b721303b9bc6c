"""What the relevance model costs: scoring 30 (question, passage) pairs in one call.

    .venv/bin/python bench/rerank_bench.py [--rounds 20] [--pairs 30]
        [--fp32 .train/relevance/model-fp32.onnx] [--json bench/results/rerank.json]

The shipped int8 graph (`models/canon-rerank`) and, when given, the fp32 graph it was
quantised from, on the same inputs, interleaved round by round so machine drift hits
both alike: a long patient question (the consumer eval's median length) against 30
MedQuAD-length passages, truncated to the model's pair length as serving truncates them.
Prints the median and p95 of `--rounds` calls (after one warm-up call each) and the
ratio fp32 / int8; the embedding of one question is timed beside them as the unit.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retrieval.embed import DEFAULT_MODEL, Embedder  # noqa: E402
from retrieval.rerank import RERANK_DIR, OnnxCrossEncoder  # noqa: E402

QUESTION = (
    "thyroid nodule biopsy results\nHi, my doctor found a 2 cm nodule on my thyroid on an "
    "ultrasound and did a needle biopsy last week. The results say 'indeterminate'. What does "
    "that mean, and do I need surgery or can they just watch it? I am 54 and otherwise healthy."
)
PASSAGE = (
    "What are the treatments for thyroid nodules?\nMost thyroid nodules are not cancer and "
    "need no treatment beyond regular checks with ultrasound. When a fine needle aspiration "
    "biopsy is indeterminate, the doctor may repeat the biopsy, test the cells for genetic "
    "changes, or recommend removing part of the thyroid to find out whether the nodule is "
    "cancer. Nodules that make too much thyroid hormone may be treated with radioactive "
    "iodine or medicines. Large nodules that cause trouble swallowing or breathing may be "
    "removed with surgery. "
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=RERANK_DIR)
    parser.add_argument("--fp32", type=Path, default=ROOT / ".train/relevance/model-fp32.onnx")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    graphs = {"int8": OnnxCrossEncoder(args.model)}
    if args.fp32.is_file():
        graphs["fp32"] = OnnxCrossEncoder(args.model, weights=args.fp32)
    embedder = Embedder(DEFAULT_MODEL)
    texts = [f"{i}. {PASSAGE * 2}" for i in range(args.pairs)]
    timed: dict[str, list[float]] = {name: [] for name in [*graphs, "embed one question"]}
    for g in graphs.values():
        g.scores(QUESTION, texts)  # warm-up
    embedder.embed([QUESTION])
    for _ in range(args.rounds):
        for name, g in graphs.items():
            began = time.perf_counter()
            g.scores(QUESTION, texts)
            timed[name].append(time.perf_counter() - began)
        began = time.perf_counter()
        embedder.embed([QUESTION])
        timed["embed one question"].append(time.perf_counter() - began)
    meta = graphs["int8"].meta
    result = {
        "pairs": args.pairs,
        "max_length": meta["max_length"],
        "question_max": meta["question_max"],
        "rounds": args.rounds,
        "ms": {
            name: {
                "p50": round(1000 * statistics.median(v), 1),
                "p95": round(1000 * float(np.percentile(v, 95)), 1),
            }
            for name, v in timed.items()
        },
        "size_mb": {
            "int8": round((args.model / "model-int8.onnx").stat().st_size / 2**20, 1),
            **({"fp32": round(args.fp32.stat().st_size / 2**20, 1)} if "fp32" in graphs else {}),
        },
    }
    if "fp32" in graphs:
        result["fp32_over_int8"] = round(
            statistics.median(timed["fp32"]) / statistics.median(timed["int8"]), 2
        )
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
