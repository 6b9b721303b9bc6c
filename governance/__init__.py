"""Governance: articles, versions, lifecycle, roles, audit. The bottom layer."""

from governance.errors import (
    CanonError,
    Conflict,
    IllegalTransition,
    IndexUnavailable,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from governance.models import Article, ArticleVersion, Audience, Chunk, Status

__all__ = [
    "Article",
    "ArticleVersion",
    "Audience",
    "CanonError",
    "Chunk",
    "Conflict",
    "IllegalTransition",
    "IndexUnavailable",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "Status",
    "Unauthenticated",
]
