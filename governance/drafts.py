"""Authors write drafts through the API: the same versioning as ingest, with the role checked.

Governance does not parse or chunk text (that is ingest's job); the application
hands in a `Chunker` built from ingest, as it hands publishing an `IndexHook`.
"""

import hashlib
import json
from typing import Protocol

from sqlmodel import Session

from governance.errors import InvalidInput
from governance.models import ArticleMetaBase, ChunkDraft
from governance.service import Actor, RecordResult, Role, record_source

MAX_BODY_CHARS = 200_000
MAX_REVIEW_DAYS = 36_500  # a review interval past a century is a typo, and overflows dates


class Chunker(Protocol):
    def __call__(self, body: str, title: str) -> list[ChunkDraft]:
        """Split a Markdown body into structure-following chunks."""


def content_hash(article_id: str, meta: ArticleMetaBase, body: str) -> str:
    """The same canonical hash ingest computes, so one text is one version whichever way it came."""
    canonical = json.dumps(
        {"id": article_id, "meta": meta.model_dump(mode="json"), "body": body}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def write(
    session: Session,
    actor: Actor,
    article_id: str,
    meta: ArticleMetaBase,
    body: str,
    chunker: Chunker,
    *,
    submit: bool = False,
) -> RecordResult:
    """A new draft (or nothing, if the content is unchanged); authors and admins only."""
    actor.require(Role.author, Role.admin)
    if not article_id or any(c in article_id for c in "/\\ \t\n?#"):
        raise InvalidInput(f"id: must be a non-empty slug, got {article_id!r}")
    if not body.strip():
        raise InvalidInput("body: a draft needs text")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput(f"body: at most {MAX_BODY_CHARS} characters")
    if not 0 < meta.review_every_days <= MAX_REVIEW_DAYS:
        raise InvalidInput(f"review_every_days: must be between 1 and {MAX_REVIEW_DAYS}")
    return record_source(
        session,
        article_id=article_id,
        meta=meta,
        body=body,
        content_hash=content_hash(article_id, meta, body),
        chunks=chunker(body, meta.title),
        source_path=f"api:{article_id}",
        author=actor.name,
        submit=submit,
    )
