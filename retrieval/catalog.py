"""The set of published versions, as retrieval sees it.

The database decides what is live; the index may briefly hold points of a
version being published or just replaced. Every hit is checked against this
view, which reloads only when the ledger epoch moves (one tiny query a request).
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
        with self._engine.connect() as connection:
            current = connection.execute(_EPOCH).scalar() or 0
            if current == self._epoch:
                return self._live
            with self._lock, Session(bind=connection) as session:
                if current != self._epoch:
                    self._live = service.published_view(session)
                    self._epoch = current
            return self._live
