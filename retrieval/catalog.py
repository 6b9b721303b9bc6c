"""The set of published versions, as retrieval sees it.

The database decides what is live; the index may briefly hold points of a
version being published or just replaced. Every hit is checked against this
view, which reloads only when the ledger epoch moves (one tiny query a request).
"""

import threading
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy.engine import Engine
from sqlmodel import Session

from governance import service
from governance.models import LiveVersion


class FreshnessMode(StrEnum):
    flag = "flag"  # served, marked stale
    downrank = "downrank"  # served after fresh content
    withhold = "withhold"  # expired content withheld from patients; staff see it flagged


@dataclass(frozen=True)
class FreshnessPolicy:
    mode: FreshnessMode = FreshnessMode.withhold
    grace_days: int = 30

    def stale(self, live: LiveVersion, today: date) -> bool:
        return live.review_due is not None and live.review_due < today

    def expired(self, live: LiveVersion, today: date) -> bool:
        return (
            live.review_due is not None
            and live.review_due + timedelta(days=self.grace_days) < today
        )


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._epoch = -1
        self._live: dict[int, LiveVersion] = {}

    def live(self) -> dict[int, LiveVersion]:
        with Session(self._engine) as session:
            current = service.epoch(session)
            if current == self._epoch:
                return self._live
            with self._lock:
                if current != self._epoch:
                    self._live = service.published_view(session)
                    self._epoch = current
            return self._live
