"""Refuses NUL characters in a request before it reaches a route (422 naming where).

PostgreSQL text cannot hold U+0000, so a NUL in a path, query, header or JSON string
would otherwise surface as a database error (500) wherever the value is first stored
or compared. Checked once here; bodies are at most `CANON_MAX_REQUEST_BYTES`, and the
precise JSON walk runs only when the raw bytes contain an escaped NUL.
"""

import json
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _body_has_nul(body: bytes, content_type: bytes) -> bool:
    if b"\x00" in body:
        return True
    if b"json" in content_type:
        if b"\\u0000" not in body:
            return False
        try:
            return _has_nul(json.loads(body))
        except ValueError:
            return False  # not JSON: the route's own parsing refuses it
    return b"%00" in body  # forms


def _where(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    if b"%00" in scope.get("query_string", b"") or b"\x00" in scope.get("query_string", b""):
        return "query"
    for name, value in scope.get("headers") or []:
        if b"\x00" in value:
            return f"header {name.decode('latin-1')}"
    return None


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _where(scope)
        if where is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            messages: list[Message] = []
            body = b""
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
            if _body_has_nul(body, content_type):
                where = "body"
            else:
                replay = iter(messages)

                async def replayed() -> Message:
                    return next(replay, None) or await receive()

                await self.app(scope, replayed, send)
                return
        if where is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            status_code=422,
            content={
                "error": {
                    "code": "invalid_input",
                    "message": f"{where}: NUL characters (U+0000) are not allowed",
                }
            },
        )
        await response(scope, receive, send)
