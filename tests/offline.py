"""Python source that, run first in a child process, makes every socket refuse to connect.

Tests prepend it to the scripts they run in a fresh interpreter, so any download a
library attempts fails loudly instead of being served by a cache or the network.
"""

REFUSE_NETWORK = """
import socket
def _refuse(*args, **kwargs):
    raise OSError("network disabled for this test")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.socket.sendto = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


def run_offline(code: str) -> str:
    """Run `code` in a fresh interpreter from the repository root with sockets refused and
    no model hub (offline flags, no HF cache); its stdout, stripped. Fails on any error."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME="/nonexistent")
    done = subprocess.run(
        [sys.executable, "-c", REFUSE_NETWORK + code],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
