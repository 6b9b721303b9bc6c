"""Freshness: the derived states, the owner's report, re-verification, and each serving policy."""

from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from canon.runtime import Runtime
from governance import audit, freshness, service
from governance.errors import IllegalTransition
from governance.freshness import Freshness, FreshnessMode, FreshnessPolicy
from governance.models import ArticleVersion, Audience, AuditEvent
from retrieval.hybrid import Retriever
from tests.governance.factory import REVIEWER, draft, live

TODAY = date(2026, 11, 20)


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


@pytest.mark.parametrize(
    ("due_in_days", "expected"),
    [
        (90, Freshness.fresh),
        (10, Freshness.due_soon),
        (-5, Freshness.stale),
        (-30, Freshness.stale),
        (-31, Freshness.expired),
    ],
)
def test_state_is_derived_from_the_review_date(due_in_days: int, expected: Freshness) -> None:
    policy = FreshnessPolicy(FreshnessMode.withhold, grace_days=30)
    assert policy.state(TODAY + timedelta(days=due_in_days), TODAY) == expected
    assert policy.state(None, TODAY) == Freshness.unknown


def test_report_lists_what_is_due_by_owner_and_service_line(engine: Engine) -> None:
    policy = FreshnessPolicy(FreshnessMode.withhold, grace_days=30)
    with Session(engine) as s:
        live(s, article_id="fresh", owner="Maria", last_reviewed=ago(10), review_every_days=365)
        live(s, article_id="soon", owner="Maria", last_reviewed=ago(80), review_every_days=90)
        live(
            s,
            article_id="stale",
            owner="Raj",
            service_line="pharmacy",
            last_reviewed=ago(100),
            review_every_days=90,
        )
        live(
            s,
            article_id="expired",
            owner="Raj",
            service_line="pharmacy",
            last_reviewed=ago(400),
            review_every_days=365,
        )
        live(
            s,
            article_id="expired-staff",
            owner="Raj",
            service_line="pharmacy",
            last_reviewed=ago(400),
            review_every_days=365,
            audience=Audience.staff,
        )
        draft(s, article_id="unpublished", last_reviewed=ago(900))  # not served: not listed

        items = freshness.report(s, policy, TODAY)
        by_id = {i.article_id: i for i in items}
        assert [i.article_id for i in items] == ["expired", "expired-staff", "stale", "soon"]
        assert by_id["expired"].state == Freshness.expired and by_id["expired"].days_overdue == 35
        assert by_id["expired"].withheld_from_patients
        assert not by_id["expired-staff"].withheld_from_patients  # staff content: staff see it
        assert by_id["stale"].state == Freshness.stale and not by_id["stale"].withheld_from_patients
        assert by_id["soon"].review_due == ago(80) + timedelta(days=90)
        owners = freshness.grouped(items, "owner")
        assert {k: len(v) for k, v in owners.items()} == {"Maria": 1, "Raj": 3}
        lines = freshness.grouped(items, "service_line")
        assert {k: len(v) for k, v in lines.items()} == {"billing": 1, "pharmacy": 3}
        assert [i.article_id for i in freshness.report(s, policy, TODAY, owner="Maria")] == ["soon"]
        everything = freshness.report(s, policy, TODAY, include_fresh=True)
        assert {i.article_id for i in everything} == {*by_id, "fresh"}
        flag = freshness.report(s, FreshnessPolicy(FreshnessMode.flag, 30), TODAY)
        assert not any(i.withheld_from_patients for i in flag)


def test_reverify_resets_the_clock_without_a_new_version(engine: Engine) -> None:
    policy = FreshnessPolicy(FreshnessMode.withhold, grace_days=30)
    with Session(engine) as s:
        v = live(s, last_reviewed=ago(400), review_every_days=365)
        epoch = service.epoch(s)
        article = freshness.reverify(
            s, "billing-hours", REVIEWER, TODAY, note="checked with the office"
        )
        assert article.last_reviewed == TODAY
        assert article.review_due() == TODAY + timedelta(days=365)
        assert service.epoch(s) == epoch + 1  # retrieval's catalog reloads
        assert len(s.exec(select(ArticleVersion)).all()) == 1
        assert service.get_version(s, v.id or 0).revision == v.revision
        assert freshness.report(s, policy, TODAY) == []
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "reverify")).one()
        assert event.actor == "rob" and event.version_id == v.id
        assert "checked with the office" in (event.reason or "")
        assert str(ago(400)) in (event.reason or "")
        assert audit.verify(s).ok


def test_reverify_needs_published_content(engine: Engine) -> None:
    with Session(engine) as s:
        draft(s)
        with pytest.raises(IllegalTransition, match="no published version"):
            freshness.reverify(s, "billing-hours", REVIEWER, TODAY)


EXPIRED_TEXT = "Visitor parking is in Garage A on Oak Street and costs five dollars per day."


def _retriever(rt: Runtime, mode: FreshnessMode) -> Retriever:
    return Retriever(
        rt.store,
        rt.embedder,
        rt.sparse,
        rt.catalog,
        freshness=FreshnessPolicy(mode, grace_days=30),
        today=lambda: TODAY,
    )


@pytest.fixture
def parking(runtime: Runtime) -> Runtime:
    with Session(runtime.engine) as s:
        index = runtime.sync
        live(
            s,
            index,
            article_id="parking-expired",
            body=EXPIRED_TEXT,
            service_line="visitors",
            last_reviewed=ago(400),
            review_every_days=365,
        )
        live(
            s,
            index,
            article_id="parking-stale",
            service_line="visitors",
            body="Garage C visitor parking on Pine Street offers free parking on weekends.",
            last_reviewed=ago(100),
            review_every_days=90,
        )
        live(
            s,
            index,
            article_id="parking-fresh",
            service_line="visitors",
            body="Garage B visitor parking on Elm Street is open 24 hours a day.",
            last_reviewed=ago(10),
            review_every_days=365,
        )
    return runtime


def _ids(rt: Runtime, mode: FreshnessMode, audience: Audience) -> list[tuple[str, bool]]:
    passages = _retriever(rt, mode).search(EXPIRED_TEXT, audience=audience, top_k=5)
    return [(p.article_id, p.stale) for p in passages]


def test_flag_serves_everything_and_marks_stale(parking: Runtime) -> None:
    found = _ids(parking, FreshnessMode.flag, Audience.patient)
    assert found[0] == ("parking-expired", True)  # the best match, served with its flag
    assert dict(found) == {"parking-expired": True, "parking-stale": True, "parking-fresh": False}


def test_downrank_puts_stale_content_after_fresh(parking: Runtime) -> None:
    found = _ids(parking, FreshnessMode.downrank, Audience.patient)
    assert found[0] == ("parking-fresh", False)
    assert {a for a, _ in found} == {"parking-expired", "parking-stale", "parking-fresh"}
    assert all(stale for _a, stale in found[1:])


def test_withhold_hides_expired_content_from_patients_only(parking: Runtime) -> None:
    patient = dict(_ids(parking, FreshnessMode.withhold, Audience.patient))
    assert "parking-expired" not in patient
    assert patient == {"parking-stale": True, "parking-fresh": False}  # stale, in grace: flagged
    staff = dict(_ids(parking, FreshnessMode.withhold, Audience.staff))
    assert staff["parking-expired"] is True  # staff still see it, with the warning


def test_reverify_brings_withheld_content_back_at_once(parking: Runtime) -> None:
    assert "parking-expired" not in dict(_ids(parking, FreshnessMode.withhold, Audience.patient))
    with Session(parking.engine) as s:
        freshness.reverify(s, "parking-expired", REVIEWER, TODAY)
    found = dict(_ids(parking, FreshnessMode.withhold, Audience.patient))
    assert found["parking-expired"] is False
