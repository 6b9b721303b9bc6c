"""Interleaved A/B of `canon serve` variants on one kept index home: server CPU per request.

On a shared 2-core machine wall-clock throughput drifts with whatever else runs, so
variants are run in alternating order, round after round, each in a fresh server on the
same home, and compared on the server's CPU ms per request (all its threads and its
child processes, from /proc: see `loadgen.drive`) as well as req/s.

A variant is `NAME` or `NAME:KEY=VALUE,KEY=VALUE`: environment for its server. Point
`PYTHONPATH` at another checkout (`git worktree add /tmp/base HEAD~1`) to serve older
code with this venv; any `CANON_*` setting works as usual.

    .venv/bin/python bench/serve_ab.py --home /tmp/canon-100k/n100000 \
        --variant before:PYTHONPATH=/tmp/base --variant after --rounds 4 --duration 10
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import loadgen  # noqa: E402
from answer_bench import bench_key  # noqa: E402


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    name, _, rest = spec.partition(":")
    env: dict[str, str] = {}
    for pair in filter(None, rest.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--variant {spec!r}: {pair!r} is not KEY=VALUE")
        env[key] = value
    return name, env


def one(
    home: Path,
    env: dict[str, str],
    endpoints: list[str],
    bodies: list[bytes],
    auth: dict[str, str],
    clients: int,
    duration: float,
) -> dict[str, Any]:
    port = loadgen.free_port()
    server = loadgen.start_canon(home, port, **env)
    try:
        loadgen.wait_ready(port, auth)
        return {
            endpoint: loadgen.drive(
                port, endpoint, bodies, clients, duration, auth, server_pid=server.pid
            )
            for endpoint in endpoints
        }
    finally:
        loadgen.stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home kept by answer_bench")
    parser.add_argument("--variant", action="append", required=True, help="NAME[:K=V,...]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--endpoints",
        nargs="+",
        choices=["/v1/search", "/v1/answer"],
        default=["/v1/search", "/v1/answer"],
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from evals.datasets import load as load_dataset

    golden = load_dataset("sample")
    bodies = [
        json.dumps({"question": q.question, "audience": q.audience.value}).encode() for q in golden
    ]
    auth = {"Authorization": f"Bearer {bench_key(args.home)}"}
    variants = [parse_variant(v) for v in args.variant]
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for name, env in order:
            result = one(args.home, env, args.endpoints, bodies, auth, args.clients, args.duration)
            runs.append({"round": r, "variant": name, "at": time.strftime("%H:%M:%S"), **result})
            brief = {
                ep: (
                    lv["rps"],
                    lv["server_cpu_ms_per_req"],
                    lv["server_own_cpu_ms_per_req"],
                    lv["errors"],
                    lv["load_1min"],
                )
                for ep, lv in result.items()
            }
            print(
                json.dumps({"round": r, "variant": name, "rps_cpu_owncpu_errors_load": brief}),
                flush=True,
            )
    summary: dict[str, Any] = {}
    for name, _ in variants:
        mine = [run for run in runs if run["variant"] == name]
        summary[name] = {
            ep: {
                "rps_median": statistics.median(run[ep]["rps"] for run in mine),
                "cpu_ms_median": statistics.median(
                    run[ep]["server_cpu_ms_per_req"] for run in mine
                ),
                "cpu_ms_all": [run[ep]["server_cpu_ms_per_req"] for run in mine],
                "own_cpu_ms_median": statistics.median(
                    run[ep]["server_own_cpu_ms_per_req"] for run in mine
                ),
                "own_cpu_ms_all": [run[ep]["server_own_cpu_ms_per_req"] for run in mine],
                "rps_all": [run[ep]["rps"] for run in mine],
                "errors": sum(run[ep]["errors"] for run in mine),
            }
            for ep in args.endpoints
        }
    out = {
        "variants": dict(variants),
        "load_end": os.getloadavg(),
        "summary": summary,
        "runs": runs,
    }
    loadgen.write_json(args.json, out)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
