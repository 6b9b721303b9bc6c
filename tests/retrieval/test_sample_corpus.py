"""Safety and quality probes over the whole sample corpus and its golden set."""

from datetime import date

from canon.runtime import Runtime
from evals import datasets
from governance.models import Audience
from retrieval.catalog import FreshnessMode, FreshnessPolicy
from retrieval.hybrid import Retriever

GOLDEN = datasets.load("sample")


def staff_articles(rt: Runtime) -> set[str]:
    return {v.article_id for v in rt.catalog.live().values() if v.audience == Audience.staff}


def test_staff_only_questions_leak_nothing_to_patients(sample_runtime: Runtime) -> None:
    staff = staff_articles(sample_runtime)
    assert len(staff) >= 5
    probes = [q for q in GOLDEN if q.category == "staff_only"]
    assert len(probes) >= 5
    for q in probes:
        passages = sample_runtime.retriever.search(q.question, audience=Audience.patient, top_k=20)
        assert not {p.article_id for p in passages} & staff, q.id
        answer = sample_runtime.answers.answer(q.question, audience=Audience.patient)
        assert not {s.passage.article_id for s in answer.sentences} & staff, q.id


def test_staff_see_staff_content(sample_runtime: Runtime) -> None:
    staff = staff_articles(sample_runtime)
    hits = 0
    for q in (q for q in GOLDEN if q.category == "staff_only"):
        passages = sample_runtime.retriever.search(q.question, audience=Audience.staff, top_k=5)
        hits += bool({p.article_id for p in passages} & staff)
    assert hits >= 20


def test_only_the_live_version_of_a_revised_article_is_served(sample_runtime: Runtime) -> None:
    for q in (q for q in GOLDEN if q.category == "versioned"):
        answer = sample_runtime.answers.answer(q.question, audience=q.audience)
        versions = {(s.passage.article_id, s.passage.version) for s in answer.sentences}
        assert ("billing-office-hours", 1) not in versions, q.id
        passages = sample_runtime.retriever.search(q.question, audience=q.audience, top_k=20)
        assert {p.version for p in passages if p.article_id == "billing-office-hours"} <= {2}


def test_expired_content_is_withheld_from_patients_and_flagged_for_staff(
    sample_runtime: Runtime,
) -> None:
    rt = sample_runtime
    withhold = Retriever(
        rt.store,
        rt.embedder,
        rt.sparse,
        rt.catalog,
        freshness=FreshnessPolicy(FreshnessMode.withhold, grace_days=30),
        today=lambda: date(2026, 11, 22),
    )
    question = "What time is quiet time in the ICU?"
    assert all(
        p.article_id != "visitors-icu-rules"
        for p in withhold.search(question, audience=Audience.patient)
    )
    staff_view = withhold.search(question, audience=Audience.staff)
    icu = [p for p in staff_view if p.article_id == "visitors-icu-rules"]
    assert icu and all(p.stale for p in icu)


# The retrieval and abstention floors live in evals/gates.toml, checked by
# tests/evals/test_gates.py with the rest of the sample-corpus suites.
