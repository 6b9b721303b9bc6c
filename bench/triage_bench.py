"""What triage costs a question, beside what embedding the question costs, in one run.

    .venv/bin/python bench/triage_bench.py [--rounds 3] [--json bench/results/triage.json]

Every message of the triage development set (English and Spanish, 916) is triaged one at
a time, as a request does: the trained model, the pattern floor and language detection
(`Triager.check`), alone and with the e5 second opinion, and the query encoder
(`Embedder.embed_query`, cache off) on the same message, interleaved message by message so
machine drift hits all alike. The first round warms up and is discarded. Prints
p50/p95/p99 in milliseconds and the ratios to the encoder.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from canon.settings import Settings  # noqa: E402
from evals import triage as triage_eval  # noqa: E402
from retrieval.embed import Embedder  # noqa: E402
from retrieval.triage import Triager, triage  # noqa: E402
from retrieval.triage_model import TriageModel  # noqa: E402


def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000
    return {
        q: round(float(np.percentile(a, p)), 3) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the first warms up)")
    settings = Settings()
    embedder = Embedder(settings.embed_model, backend=settings.embed_backend, cache_size=0)
    triager = Triager(TriageModel())
    with_e5 = Triager(TriageModel(second_opinion=True))
    messages = [m.text for m in triage_eval.load("dev")]
    timings: dict[str, list[float]] = {
        "triage": [],
        "triage_with_e5": [],
        "patterns_only": [],
        "embed_query": [],
    }
    for round_ in range(args.rounds):
        for text in messages:
            t0 = time.perf_counter()
            triager.check(text)
            t1 = time.perf_counter()
            triage(text)
            t2 = time.perf_counter()
            embedder.embed_query(text)
            t3 = time.perf_counter()
            with_e5.check(text)
            t4 = time.perf_counter()
            if round_:
                timings["triage"].append(t1 - t0)
                timings["patterns_only"].append(t2 - t1)
                timings["embed_query"].append(t3 - t2)
                timings["triage_with_e5"].append(t4 - t3)
    result = {
        "messages": len(messages),
        "rounds_measured": args.rounds - 1,
        "backend": settings.embed_backend,
        **{k: _ms(v) for k, v in timings.items()},
        "triage_over_embed_p50": round(
            float(np.median(timings["triage"]) / np.median(timings["embed_query"])), 3
        ),
        "triage_with_e5_over_embed_p50": round(
            float(np.median(timings["triage_with_e5"]) / np.median(timings["embed_query"])), 3
        ),
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(result, indent=1))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
