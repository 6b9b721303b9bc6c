"""bench/floor_bench.py's worker: it runs the served query for every question it counts,
keeps each mode's figures apart, and its arguments are checked before any work."""

import queue
import subprocess
import sys
import threading
from pathlib import Path

from canon.runtime import Runtime
from canon.settings import Settings
from evals.runner import publish_sample
from retrieval.embed import Embedder
from tests import benchmod

BENCH = benchmod.BENCH


class _Go:
    def __init__(self, start_at: float) -> None:
        self._event = threading.Event()
        self._event.set()
        self.start_at = start_at

    def wait(self) -> None:
        self._event.wait()


def test_worker_counts_each_mode_apart(tmp_path: Path, embedder: Embedder) -> None:
    import time

    floor = benchmod.load("floor_bench")
    home = tmp_path / "home"
    rt = Runtime(Settings(home=home), embedder=embedder)
    publish_sample(rt)
    rt.close()
    out: queue.Queue[object] = queue.Queue()
    floor._worker(str(home), [0, 3], 0.4, 2, 5, _Go(time.time()), out)
    assert out.get_nowait() == "ready"
    tally = out.get_nowait()
    assert isinstance(tally, dict) and set(tally) == {0, 3}
    only, both = tally[0], tally[3]
    assert only["done"] > 0 and both["done"] > 0 and both["done"] % 3 == 0
    assert only["query"] < 0.05 * only["cpu"]  # encoder-only mode runs no index query
    assert both["query"] > 0 and both["embed"] > 0
    assert abs(both["embed"] + both["query"] - both["cpu"]) < 1e-6


def test_bad_arguments_are_refused_before_any_work(tmp_path: Path) -> None:
    script = str(BENCH / "floor_bench.py")
    missing = subprocess.run(
        [sys.executable, script, "--home", str(tmp_path)], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no bench-build.json" in missing.stderr
    (tmp_path / "bench-build.json").write_text("{}")
    for bad in (["--workers", "0"], ["--rounds", "0"], ["--slot", "0"], ["--batches", "0"]):
        done = subprocess.run(
            [sys.executable, script, "--home", str(tmp_path), *bad],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2 and "--" in done.stderr, bad
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-build.json"]
