"""FastAPI application factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from canon import errors
from canon.runtime import Runtime
from governance.api import router as governance_router
from governance.errors import CanonError
from retrieval.api import router as answers_router


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


def create_app(runtime: Runtime | None = None) -> FastAPI:
    rt = runtime or Runtime()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = rt.engine
        app.state.answers = rt.answers
        rt.embedder.embed_query("warm up")
        yield
        if runtime is None:
            rt.close()

    app = FastAPI(
        title="Canon",
        version="0.1.0",
        summary="Governed knowledge and grounded answers for a health system's digital front door.",
        lifespan=lifespan,
        responses={422: {"model": ErrorResponse}},
    )
    app.state.runtime = rt

    @app.exception_handler(CanonError)
    async def canon_error(_request: Request, exc: CanonError) -> JSONResponse:
        status = errors.lookup(errors.HTTP_STATUS, exc, 400)
        return JSONResponse(
            status_code=status, content={"error": {"code": exc.code, "message": str(exc)}}
        )

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
    return app
