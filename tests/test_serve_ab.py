"""bench/serve_ab.py's variant specs, and loadgen's server CPU split into the process
itself and its children (the query encoder runs in one)."""

import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests import benchmod


def _load(name: str) -> ModuleType:
    return benchmod.load(name)


def test_variant_specs() -> None:
    ab = _load("serve_ab")
    assert ab.parse_variant("after") == ("after", {})
    assert ab.parse_variant("before:PYTHONPATH=/tmp/base,CANON_MICRO_BATCH=0") == (
        "before",
        {"PYTHONPATH": "/tmp/base", "CANON_MICRO_BATCH": "0"},
    )
    assert ab.parse_variant("x:A=b=c") == ("x", {"A": "b=c"})
    with pytest.raises(SystemExit):
        ab.parse_variant("x:NOVALUE")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")
def test_cpu_split_counts_the_process_and_its_children_apart() -> None:
    loadgen = _load("loadgen")
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"subprocess.run([sys.executable, '-c', {burn!r}])\ntime.sleep(5)",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        own, children = loadgen.cpu_split(parent.pid)
        while children == 0.0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the child is counted while it lives
            own, children = loadgen.cpu_split(parent.pid)
        assert children > 0.0
        assert loadgen.cpu_seconds(parent.pid) >= own
        own_self, _ = loadgen.cpu_split(os.getpid())
        assert own_self > 0.0
    finally:
        parent.kill()
        parent.wait()
