"""The owner's review queue: pending decisions, stale content and reader feedback with counts."""

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session

from governance import queue
from governance.freshness import Freshness, FreshnessMode, FreshnessPolicy
from governance.models import Rating, Status
from tests.governance.factory import answer_citing, draft, feedback, live

TODAY = date(2026, 11, 20)
POLICY = FreshnessPolicy(FreshnessMode.withhold, grace_days=30)


def test_feedback_on_cited_versions_reaches_the_owners_queue(engine: Engine) -> None:
    with Session(engine) as s:
        hours = live(s, article_id="billing-hours", owner="Maria")
        parking = live(s, article_id="parking", owner="Raj", service_line="visitors")
        live(s, article_id="quiet", owner="Raj")
        both = answer_citing(s, [hours, parking], "are you open saturday and where to park")
        only_hours = answer_citing(s, [hours, hours])  # two passages of one version
        feedback(s, both, Rating.outdated, "Saturday hours changed last month")
        feedback(s, only_hours, Rating.wrong)
        feedback(s, only_hours, Rating.helpful)

        items = {i.article_id: i for i in queue.review_queue(s, POLICY, TODAY)}
        assert set(items) == {"billing-hours", "parking"}  # `quiet` needs nobody
        assert items["billing-hours"].feedback == {"outdated": 1, "wrong": 1, "helpful": 1}
        assert items["billing-hours"].problems == 2
        assert items["parking"].feedback == {"outdated": 1}
        assert items["parking"].reasons == ["1 problem report(s) from readers"]

        raj = queue.review_queue(s, POLICY, TODAY, owner="Raj")
        assert [i.article_id for i in raj] == ["parking"]

        listed = queue.feedback_list(s, owner="Maria")
        assert [(f.article_id, f.rating) for f in listed] == [
            ("billing-hours", Rating.helpful),
            ("billing-hours", Rating.wrong),
            ("billing-hours", Rating.outdated),
        ]
        outdated = queue.feedback_list(s, article_id="parking")
        assert len(outdated) == 1 and outdated[0].comment == "Saturday hours changed last month"
        assert outdated[0].question == "are you open saturday and where to park"
        problems = queue.feedback_list(s, ratings=(Rating.wrong,))
        assert [(f.article_id, f.version) for f in problems] == [("billing-hours", 1)]


def test_feedback_counts_follow_the_served_version(engine: Engine) -> None:
    with Session(engine) as s:
        v1 = live(s, body="Open 8 to 5.")
        feedback(s, answer_citing(s, [v1]), Rating.outdated)
        live(s, body="Open 7:30 to 6.")  # the owner fixed it: v2 is served now
        items = queue.review_queue(s, POLICY, TODAY)
        assert items == []
        assert [f.version for f in queue.feedback_list(s)] == [1]  # the history stays


def test_pending_versions_and_stale_content_are_queued(engine: Engine) -> None:
    with Session(engine) as s:
        live(s, article_id="old", last_reviewed=date(2025, 1, 1), review_every_days=365)
        waiting = draft(s, article_id="new-article")
        draft(s, article_id="unsubmitted", submit=False)
        items = queue.review_queue(s, POLICY, TODAY)
        assert [i.article_id for i in items] == ["new-article", "old"]
        first, second = items
        assert first.pending_status == Status.in_review
        assert first.pending_revision == waiting.revision
        assert first.pending_version == 1 and first.published_version is None
        assert first.reasons == ["waiting for review"]
        assert second.freshness == Freshness.expired
        assert second.reasons == ["expired: review was due 2026-01-01"]
