"""The set of published versions, as retrieval sees it.

The database decides what is live; the index may briefly hold points of a
version being published or just replaced. Every hit is checked against this
view, which reloads only when the ledger epoch moves (one tiny query a request, or
one for all the requests an event loop resumes together: `Retriever.search_async`).
"""

import threading

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from governance import service
from governance.freshness import FreshnessMode, FreshnessPolicy
from governance.models import Ledger, LiveVersion

__all__ = ["Catalog", "FreshnessMode", "FreshnessPolicy"]

_EPOCH = select(Ledger.epoch).where(Ledger.id == 1)  # built once: the check runs per request


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._epoch = -1
        self._live: dict[int, LiveVersion] = {}

    def live(self) -> dict[int, LiveVersion]:
        return self.live_at(self.epoch())

    def epoch(self) -> int:
        """The published set's epoch now (one primary-key read)."""
        with self._engine.connect() as connection:
            return int(connection.execute(_EPOCH).scalar() or 0)

    def live_at(self, current: int) -> dict[int, LiveVersion]:
        """The published versions as of epoch `current` or later, read again only when
        `current` differs from the epoch they were read at."""
        if current == self._epoch:
            return self._live
        with self._lock, Session(self._engine) as session:
            if current != self._epoch:
                # read after `current` was: never older than it, and a newer view only
                # makes the next check read again
                self._live = service.published_view(session)
                self._epoch = current
        return self._live
