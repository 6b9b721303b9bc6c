"""Load: /v1/answer with 32 concurrent clients for 60 s over loopback, against a server
this script starts; zero errors required.

Publishes the sample corpus into a scratch home (optionally grown with synthetic
passages to --points, as bench/answer_bench.py does), starts `canon serve` with the
query-embedding cache off (every request embeds its question) and the answer log on,
and drives it with bench/loadgen.py's client: random golden-set questions, one
keep-alive connection per client, 2 s of warm-up not measured. Then it stops the
server with SIGTERM and checks that every answer it gave is in the answer log (the log
is written in the background, so this is the no-loss-at-shutdown check).

Exit status 1 if any request failed or any answer is missing from the log.

    .venv/bin/python bench/load_bench.py --clients 32 --duration 60 --json bench/results/load.json
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import answer_bench
import loadgen


def logged_answers(home: Path, key_name: str) -> int:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from governance.db import make_engine
    from governance.models import AnswerLog

    engine = make_engine(f"sqlite:///{home / 'canon.db'}")
    with Session(engine) as session:
        count = session.exec(
            select(func.count()).select_from(AnswerLog).where(AnswerLog.key_name == key_name)
        ).one()
    engine.dispose()
    return int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--points", type=int, default=0, help="grow the index to N points")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from evals.datasets import load as load_dataset

    bodies = [
        json.dumps({"question": q.question, "audience": q.audience.value}).encode()
        for q in load_dataset("sample")
    ]
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with tempfile.TemporaryDirectory(prefix="canon-load-bench-") as tmp:
        home = Path(tmp) / "home"
        secret = answer_bench.build_base(home)
        real = answer_bench.real_points(home)
        if args.points > len(real):
            vectors, payloads = answer_bench.synthesize(real, args.points - len(real), seed=1)
            answer_bench.grow(home, vectors, payloads)
        result["points"] = max(args.points, len(real))
        port = loadgen.free_port()
        server = loadgen.start_canon(home, port)
        auth = {"Authorization": f"Bearer {secret}"}
        try:
            loadgen.wait_ready(port, auth)
            result["load_before"] = os.getloadavg()
            result["answer"] = loadgen.drive(
                port,
                "/v1/answer",
                bodies,
                args.clients,
                args.duration,
                auth,
                server_pid=server.pid,
            )
        finally:
            result["server_exit"] = loadgen.stop(server)  # uvicorn re-raises SIGTERM: -15
        answered = result["answer"]["statuses"].get("200", 0) + result["answer"]["warmup_ok"]
        result["answered"] = answered
        result["logged"] = logged_answers(home, "bench")
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    if result["answer"]["errors"] or result["logged"] != answered:
        sys.exit(1)


if __name__ == "__main__":
    main()
