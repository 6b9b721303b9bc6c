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
