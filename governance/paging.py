"""Listings come in pages: `limit` rows (at most MAX_PAGE_SIZE) after skipping `offset`."""

from collections.abc import Sequence
from typing import TypeVar

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 2**31 - 1

T = TypeVar("T")


def page(rows: Sequence[T], limit: int, offset: int) -> list[T]:
    return list(rows[offset : offset + limit])
