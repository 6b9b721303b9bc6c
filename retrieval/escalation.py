"""The next step an escalated message is given, from governed content.

Which step each kind of escalation gets is not a string in code: it is a section of the
published article `escalation-routes` (corpus/safety/escalation-routes.md), which a content
owner changes like any other article, through review and publication. The answer carries
the step's text with the exact version and section it came from, as a citation does.
When that article is not published (or this audience may not see it), the answer says so
in `next_step` being null: the escalation itself never depends on it.
"""

import re
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from governance.models import ArticleVersion, Audience
from retrieval.catalog import Catalog

ROUTES_ARTICLE = "escalation-routes"
# The section of `escalation-routes` each route reads, by its heading.
ROUTE_SECTIONS = {
    "emergency": "Medical Emergency",
    "crisis": "Crisis Support",
    "urgent_symptom": "Urgent Symptoms",
    "clinical_judgment": "Questions for Your Care Team",
    "interpreter": "Interpreter Services",
}
_HEADING = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class NextStep:
    route: str  # a key of ROUTE_SECTIONS
    text: str
    article_id: str
    version: int
    version_id: int
    section: str


def sections(body: str) -> dict[str, str]:
    """A Markdown body's `## ` sections: heading -> text (blank lines folded)."""
    found = list(_HEADING.finditer(body))
    out: dict[str, str] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(body)
        text = " ".join(body[match.end() : end].split())
        out[match.group(1).strip()] = text
    return out


class EscalationRoutes:
    """Reads the published `escalation-routes` version through the catalog (one epoch
    check a call) and keeps its parsed sections until another version is published."""

    def __init__(self, engine: Engine, catalog: Catalog) -> None:
        self._engine = engine
        self._catalog = catalog
        self._lock = threading.Lock()
        self._version_id: int | None = None
        self._sections: dict[str, str] = {}

    def next_step(self, route: str, audience: Audience) -> NextStep | None:
        if route not in ROUTE_SECTIONS:
            raise ValueError(f"unknown escalation route {route!r}: one of {sorted(ROUTE_SECTIONS)}")
        live = next(
            (v for v in self._catalog.live().values() if v.article_id == ROUTES_ARTICLE), None
        )
        if live is None or not _visible(live.audience, audience):
            return None
        with self._lock:
            if self._version_id != live.version_id:
                with Session(self._engine) as session:
                    version = session.exec(
                        select(ArticleVersion).where(ArticleVersion.id == live.version_id)
                    ).one()
                    self._sections = sections(version.body)
                self._version_id = live.version_id
            text = self._sections.get(ROUTE_SECTIONS[route])
        if not text:
            return None
        return NextStep(
            route, text, live.article_id, live.number, live.version_id, ROUTE_SECTIONS[route]
        )


def _visible(article: Audience, asker: Audience) -> bool:
    """A patient sees patient content; staff see everything."""
    return asker == Audience.staff or article == Audience.patient
