"""A small real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies."""

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A script maps the request's messages to (HTTP status, raw response body).
Script = Callable[[list[dict[str, str]]], tuple[int, bytes]]


def chat(content: Any) -> tuple[int, bytes]:
    return 200, json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": content}}]}
    ).encode()


def passage_texts(messages: list[dict[str, str]]) -> dict[int, str]:
    """The numbered passages the prompt showed, by number."""
    user = messages[-1]["content"]
    found: dict[int, str] = {}
    for match in re.finditer(
        r"^\[(\d+)\] [^\n]*\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion: )", user, re.M | re.S
    ):
        found[int(match.group(1))] = match.group(2)
    return found


class ScriptedLlm:
    def __init__(self) -> None:
        self.script: Script = lambda _m: chat("INSUFFICIENT")
        self.requests: list[dict[str, Any]] = []
        self.url = ""


@contextmanager
def scripted_llm() -> Iterator[ScriptedLlm]:
    state = ScriptedLlm()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length))
            state.requests.append(body)
            status, raw = state.script(body["messages"])
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and hung up: nothing to answer

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
