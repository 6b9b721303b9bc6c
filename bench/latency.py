"""Latency of /v1/search and /v1/answer over HTTP on loopback, one client.

Builds a scratch home with the sample corpus published, starts `canon serve` on
127.0.0.1 in a subprocess with the query-embedding cache off, sends every
golden-set question (repeated --rounds times, the first round discarded as
warm-up), and prints p50/p95/p99 per endpoint.

    .venv/bin/python bench/latency.py [--rounds 3] [--json bench/results/latency.json]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build(home: Path) -> tuple[int, str]:
    """Publish the sample corpus; return the point count and an answer-scoped key."""
    from sqlmodel import Session

    from canon.runtime import Runtime
    from canon.settings import Settings
    from evals.runner import publish_sample
    from governance import keys

    rt = Runtime(Settings(home=home))
    publish_sample(rt)
    points = rt.store.count()
    with Session(rt.engine) as session:
        _key, secret = keys.create(session, name="bench", scopes=["answer"], created_by="bench")
    rt.close()
    return points, secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": q[49],
        "p95": q[94],
        "p99": q[98],
        "mean": statistics.fmean(ordered),
        "n": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from evals.datasets import load

    questions = [(q.question, q.audience.value) for q in load("sample")]
    with tempfile.TemporaryDirectory(prefix="canon-bench-") as tmp:
        home = Path(tmp)
        points, secret = build(home)
        port = free_port()
        # No query-embedding cache: every request pays for its embedding, as a new question does.
        env = os.environ | {
            "CANON_HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "CANON_QUERY_CACHE_SIZE": "0",
        }
        server = subprocess.Popen(
            [str(REPO / ".venv/bin/canon"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {secret}"}
            with httpx.Client(base_url=base, timeout=30, headers=auth) as client:
                for _ in range(120):
                    try:
                        if client.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.5)
                else:
                    raise SystemExit("server did not become ready")
                results: dict[str, object] = {"points": points, "questions": len(questions)}
                for endpoint in ("/v1/search", "/v1/answer"):
                    samples: list[float] = []
                    for round_no in range(args.rounds):
                        for text, audience in questions:
                            started = time.perf_counter()
                            response = client.post(
                                endpoint, json={"question": text, "audience": audience}
                            )
                            elapsed = (time.perf_counter() - started) * 1000
                            response.raise_for_status()
                            if round_no > 0:
                                samples.append(elapsed)
                    results[endpoint] = percentiles(samples)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
