"""What the HTTP benchmarks share: start a server, wait for it, drive it with N clients.

The client is one asyncio process (uvloop) with one keep-alive loopback
connection per client and pre-built request bytes, so it costs far less CPU than the
server it measures on the same cores; `drive` reports its CPU time per request, and
the server's (from /proc) when given its pid. Each client sends its next request as
soon as the last answer arrived (closed loop); latency is measured at the client. One
client warms the server up for `warmup` seconds first (a slow server's warm-up requests
would otherwise run into the measured window); a request sent before the window closes
is counted when it completes.
"""

import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, headers: dict[str, str] | None = None, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/readyz", headers=headers or {}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server on {port} did not become ready")


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_canon(home: Path, port: int, **extra_env: str) -> subprocess.Popen[bytes]:
    """`canon serve` on `home` with the query-embedding cache off: every request embeds."""
    env = os.environ | {
        "CANON_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "CANON_QUERY_CACHE_SIZE": "0",
    }
    return start([str(REPO / ".venv/bin/canon"), "serve", "--port", str(port)], env | extra_env)


def stop(server: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM (uvicorn's graceful shutdown: the lifespan's cleanup runs), then wait."""
    server.terminate()
    return server.wait(timeout=timeout)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, and of its live child processes
    (`canon serve` encodes questions in one; Linux /proc)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """`cpu_seconds` in two: the process itself (all its threads), its live children."""
    own = children = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / TICK
        if proc.name == str(pid):
            own += seconds
        elif fields[1] == str(pid):  # fields[1]: the parent's pid
            children += seconds
    return own, children


def write_json(path: Path | None, data: Any) -> None:
    """A benchmark's results to `path` (its `--json`), if one was given."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))


def percentiles(samples: list[float]) -> dict[str, float]:
    if len(samples) < 2:
        only = samples[0] if samples else float("nan")
        return {"p50": only, "p95": float("nan"), "p99": float("nan"), "n": len(samples)}
    q = statistics.quantiles(samples, n=100, method="inclusive")
    p50, p95, p99 = (round(q[i], 2) for i in (49, 94, 98))
    return {"p50": p50, "p95": p95, "p99": p99, "n": len(samples)}


@dataclass
class _Tally:
    latencies: list[float]
    statuses: dict[int, int]
    failures: int = 0
    warmup_ok: int = 0


def _request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _client(
    port: int, requests: list[bytes], seed: int, start_at: float, stop_at: float, tally: _Tally
) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while seed == 0 and time.perf_counter() < start_at:  # warm-up, one client: not measured
            writer.write(rng.choice(requests))
            status = await _read_response(reader)  # (not `+= await`: clients share the tally)
            tally.warmup_ok += status == 200
        # A slow server may still be on the warm-up; the others start together regardless.
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            writer.write(rng.choice(requests))
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.failures += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            tally.latencies.append((time.perf_counter() - t0) * 1000)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
    finally:
        writer.close()


def drive(
    port: int,
    path: str,
    bodies: list[bytes],
    clients: int,
    duration: float,
    headers: dict[str, str] | None = None,
    *,
    warmup: float = 2.0,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """`clients` keep-alive connections sending random `bodies` to `path` for `duration` s.

    Returns latency percentiles (ms), req/s, non-200 and failed (connection) counts, the
    client's CPU ms per request and, with `server_pid`, the server's CPU ms per request
    (with its children, and of the process alone) and the load average at the end.
    """
    requests = [_request(port, path, body, headers or {}) for body in bodies]
    tally = _Tally([], {})
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name + "_wall"] = time.perf_counter()
        marks[name + "_client"] = time.process_time()
        own, children = cpu_split(server_pid) if server_pid else (0.0, 0.0)
        marks[name + "_server"] = own + children
        marks[name + "_server_own"] = own

    async def run() -> None:
        now = time.perf_counter()
        start_at, stop_at = now + warmup, now + warmup + duration

        async def at_start() -> None:
            await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
            mark("start")

        await asyncio.gather(
            at_start(),
            *(_client(port, requests, n, start_at, stop_at, tally) for n in range(clients)),
        )
        mark("end")

    uvloop.run(run())
    elapsed = marks["end_wall"] - marks["start_wall"]
    n = len(tally.latencies)
    ok = tally.statuses.get(200, 0) + tally.statuses.get(201, 0)
    client_cpu = marks["end_client"] - marks["start_client"]
    out: dict[str, Any] = percentiles(tally.latencies) | {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "rps": round(n / elapsed, 1),
        "errors": n - ok + tally.failures,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "warmup_ok": tally.warmup_ok,
        "client_cpu_ms_per_req": round(client_cpu * 1000 / n, 3) if n else None,
        "load_1min": os.getloadavg()[0],
    }
    if server_pid:
        server_cpu = marks["end_server"] - marks["start_server"]
        out["server_cpu_ms_per_req"] = round(server_cpu * 1000 / n, 2) if n else None
        # the server process alone: everything but the query encoder's child process
        own_cpu = marks["end_server_own"] - marks["start_server_own"]
        out["server_own_cpu_ms_per_req"] = round(own_cpu * 1000 / n, 2) if n else None
        out["server_cores_busy"] = round(server_cpu / elapsed, 2)
    return out


def encoder_ceiling(embedder: Any, questions: list[str], seconds: float) -> dict[str, Any]:
    """What the encoder alone does with the same questions, no server, three ways, each for
    `seconds`: one question per call in one thread; calls of 32 questions; one question
    per call in one thread per core at once (the encoder's sessions are thread-safe and
    release the GIL). `qps` is the best of the three: the ceiling a server is held to.
    CPU ms per query counts all of this process's threads."""
    encoder = embedder._encoder
    embedder.embed(questions[:32])
    n = len(questions)

    def timed(run: Any) -> tuple[float, float]:
        cpu0, began = time.process_time(), time.perf_counter()
        done = run(began + seconds)
        wall = time.perf_counter() - began
        return round(done / wall, 1), round((time.process_time() - cpu0) * 1000 / done, 2)

    latencies: list[float] = []

    def single(until: float) -> int:
        i = 0
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            embedder.embed([questions[i % n]])
            latencies.append((time.perf_counter() - t0) * 1000)
            i += 1
        return i

    def batch32(until: float) -> int:
        i = 0
        while time.perf_counter() < until:
            embedder.embed([questions[(i + k) % n] for k in range(32)])
            i += 32
        return i

    def parallel(until: float) -> int:
        counts: list[int] = []

        def worker(offset: int) -> None:
            i = 0
            while time.perf_counter() < until:
                encoder.encode([questions[(offset + i) % n]], 1)
                i += 1
            counts.append(i)

        threads = [
            threading.Thread(target=worker, args=(k * 97,)) for k in range(os.cpu_count() or 1)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts)

    out: dict[str, Any] = {}
    for name, run in (("single", single), ("batch32", batch32), ("parallel", parallel)):
        out[f"{name}_qps"], out[f"{name}_cpu_ms"] = timed(run)
    out["single_ms_p50"] = round(statistics.median(latencies), 2)
    out["qps"] = max(out["single_qps"], out["batch32_qps"], out["parallel_qps"])
    out["load_1min"] = os.getloadavg()[0]
    return out
