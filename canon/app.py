"""FastAPI application factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canon import errors, logs
from canon.drafting import markdown_chunker
from canon.nul_guard import NulGuard
from canon.runtime import Runtime
from governance import answer_log, ui
from governance.api import documented
from governance.api import router as governance_router
from governance.errors import CanonError
from governance.keys import KeyCache
from retrieval.api import router as answers_router


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(status_code=status, content={"error": body})


class BodyLimit:
    """Refuses request bodies over `limit` bytes (413), by Content-Length or as they stream."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(
            413, "request_too_large", f"request bodies are limited to {self.limit} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(runtime: Runtime | None = None) -> FastAPI:
    rt = runtime or Runtime()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = rt.engine
        app.state.answers = rt.answers
        app.state.index = rt.sync  # governance publishes through this hook
        app.state.chunker = markdown_chunker(rt.chunk_budget)  # drafts over HTTP
        app.state.freshness = rt.retriever.freshness
        app.state.keys = KeyCache(rt.engine)
        writer = answer_log.Writer(rt.engine) if rt.settings.answer_log else None
        app.state.answer_log = writer
        if rt.settings.micro_batch:
            rt.embedder.enable_micro_batching(
                rt.settings.micro_batch_wait_ms, process=rt.settings.query_encoder_process
            )
        rt.embedder.embed_query("warm up")
        try:
            yield
        finally:
            if writer is not None:
                writer.close()  # what is queued is written before the database closes
            rt.embedder.disable_micro_batching()
            if runtime is None:
                rt.close()

    app = FastAPI(
        title="Canon",
        version="0.1.0",
        summary="Governed knowledge and grounded answers for a health system's digital front door.",
        lifespan=lifespan,
        responses=documented(400, 401, 403, 404, 413, 422),
    )
    app.state.runtime = rt
    logs.redact_access_log()
    app.add_middleware(NulGuard)
    app.add_middleware(BodyLimit, limit=rt.settings.max_request_bytes)  # outermost

    @app.exception_handler(CanonError)
    async def canon_error(_request: Request, exc: CanonError) -> JSONResponse:
        status = errors.lookup(errors.HTTP_STATUS, exc, 400)
        return _error(status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"][1:]) or "body"
        return _error(422, "invalid_input", f"{where}: {first['msg']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        message = str(exc.detail)
        if exc.status_code == 400:  # Starlette could not decode the body (not JSON, not UTF-8)
            message = f"body: {message[:1].lower()}{message[1:]}"
        response = _error(exc.status_code, code, message)
        response.headers.update(exc.headers or {})
        return response

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> dict[str, object]:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ready", "points": rt.store.count(), "published": len(rt.catalog.live())}

    app.include_router(answers_router)
    app.include_router(governance_router)
    app.state.http_status = lambda exc: errors.lookup(errors.HTTP_STATUS, exc, 400)
    ui.mount(app)  # the owners' review UI under /ui
    return app
