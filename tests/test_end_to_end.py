"""ingest -> review -> publish -> /v1/answer on real databases, Qdrant Edge and the model."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from canon.app import create_app
from canon.runtime import Runtime
from governance import keys, service
from governance.models import Status
from governance.service import Actor, Role
from ingest.bootstrap import publish_paths
from ingest.index import doctor
from ingest.pipeline import ingest
from tests.conftest import CORPUS

AUTHOR = "e2e-author"
REVIEWER = Actor("e2e-reviewer", frozenset({Role.reviewer, Role.clinical_reviewer}))
ADMIN = Actor("e2e-admin", frozenset({Role.admin}))
HOURS_QUESTION = "What are the billing phone hours? Are you open on Saturday?"


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A few real articles from the sample corpus, including the one with a second version."""
    root = tmp_path / "corpus"
    for sub in ("billing", "insurance", "imaging"):
        shutil.copytree(CORPUS / sub, root / sub)
    return root


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with Session(runtime.engine) as s:
        _key, secret = keys.create(s, name="e2e-agent", scopes=["answer"], created_by="e2e")
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {secret}"}) as c:
        yield c


def ask(client: TestClient, question: str, audience: str = "patient") -> dict:
    response = client.post("/v1/answer", json={"question": question, "audience": audience})
    assert response.status_code == 200, response.text
    return response.json()


def cited(answer: dict) -> set[tuple[str, int]]:
    return {(c["article_id"], c["version"]) for c in answer["citations"]}


def test_published_version_is_cited_and_replaced_atomically(
    runtime: Runtime, client: TestClient, small_corpus: Path
) -> None:
    publish_paths(runtime.engine, runtime.sync, [small_corpus], author=AUTHOR)
    first = ask(client, HOURS_QUESTION)
    assert not first["abstained"] and first["grounded"]
    assert ("billing-office-hours", 1) in cited(first)
    assert all(s["citation"] < len(first["citations"]) for s in first["sentences"])
    assert "1:00 p.m." not in first["answer"]

    # Version 2 is ingested as a draft: still never served.
    revision = CORPUS / "_revisions" / "billing-office-hours.v2.md"
    report = ingest(runtime.engine, [revision], author=AUTHOR, submit=True)
    assert report.files[0].version == 2
    assert ("billing-office-hours", 2) not in cited(ask(client, HOURS_QUESTION))

    with Session(runtime.engine) as s:
        v2 = service.find_version(s, "billing-office-hours", 2)
        assert v2.id is not None
        service.approve(s, v2.id, REVIEWER)
        assert ("billing-office-hours", 2) not in cited(
            ask(client, HOURS_QUESTION)
        )  # approved, not live
        service.publish(s, v2.id, REVIEWER, runtime.sync)

    second = ask(client, HOURS_QUESTION)
    assert ("billing-office-hours", 2) in cited(second)
    assert ("billing-office-hours", 1) not in cited(second)
    assert "1:00 p.m." in second["answer"] or "6:00 p.m." in second["answer"]
    search = client.post("/v1/search", json={"question": HOURS_QUESTION, "top_k": 20}).json()
    versions = {
        p["version"] for p in search["passages"] if p["article_id"] == "billing-office-hours"
    }
    assert versions == {2}

    with Session(runtime.engine) as s:
        service.retire(
            s, "billing-office-hours", ADMIN, "phone line moved to the portal", runtime.sync
        )
    after = client.post("/v1/search", json={"question": HOURS_QUESTION, "top_k": 20}).json()
    assert all(p["article_id"] != "billing-office-hours" for p in after["passages"])


def test_staff_only_content_never_reaches_patients(
    runtime: Runtime, client: TestClient, small_corpus: Path
) -> None:
    publish_paths(runtime.engine, runtime.sync, [small_corpus], author=AUTHOR)
    staff_ids = {a.id for a in _articles(runtime) if a.audience.value == "staff"}
    assert staff_ids, "the slice must include a staff-only article"
    question = "What is the staff workflow to submit a prior authorization request?"
    staff_view = client.post("/v1/search", json={"question": question, "audience": "staff"}).json()
    assert {p["article_id"] for p in staff_view["passages"]} & staff_ids
    patient_answer = ask(client, question, "patient")
    patient_search = client.post("/v1/search", json={"question": question, "top_k": 20}).json()
    assert not {a for a, _v in cited(patient_answer)} & staff_ids
    assert not {p["article_id"] for p in patient_search["passages"]} & staff_ids


def test_unanswerable_question_abstains(
    runtime: Runtime, client: TestClient, small_corpus: Path
) -> None:
    publish_paths(runtime.engine, runtime.sync, [small_corpus], author=AUTHOR)
    answer = ask(client, "Can I bring my dog to the cafeteria for lunch?")
    assert answer["abstained"] and answer["abstain_reason"] == "no_relevant_content"
    assert answer["answer"] == "" and answer["citations"] == []


def test_urgent_question_escalates(
    runtime: Runtime, client: TestClient, small_corpus: Path
) -> None:
    publish_paths(runtime.engine, runtime.sync, [small_corpus], author=AUTHOR)
    answer = ask(client, "I have crushing chest pain, should I still come to my CT appointment?")
    assert answer["escalate"] and answer["escalate_category"] in ("emergency", "urgent_symptom")
    assert answer["escalate_reason"].startswith(answer["escalate_category"])


def test_drafts_are_not_served(runtime: Runtime, client: TestClient, tmp_path: Path) -> None:
    draft = tmp_path / "new" / "portal" / "kiosk.md"
    draft.parent.mkdir(parents=True)
    draft.write_text(
        "---\nid: portal-kiosk\ntitle: Check-in kiosks\nowner: Ann\nservice_line: portal\n"
        "audience: patient\n---\n"
        "# Check-in kiosks\n\nZebra kiosks in the lobby print a wristband for check-in.\n"
    )
    ingest(runtime.engine, [draft.parent.parent], author=AUTHOR, submit=True)
    result = client.post("/v1/search", json={"question": "zebra kiosk wristband"}).json()
    assert result["passages"] == []


def test_doctor_repairs_a_crash_between_publish_steps(runtime: Runtime, small_corpus: Path) -> None:
    publish_paths(runtime.engine, runtime.sync, [small_corpus], author=AUTHOR)
    with Session(runtime.engine) as s:
        v1 = service.find_version(s, "billing-office-hours", 1)
        assert v1.id is not None and v1.status == Status.published
    ingest(
        runtime.engine,
        [CORPUS / "_revisions" / "billing-office-hours.v2.md"],
        author=AUTHOR,
        submit=True,
    )
    with Session(runtime.engine) as s:
        v2 = service.find_version(s, "billing-office-hours", 2)
        assert v2.id is not None
        service.approve(s, v2.id, REVIEWER)
        # Crash after step 1: the new points are written, the pointer never flipped.
        runtime.sync.add_version(
            service.get_article(s, v2.article_id), v2, service.chunks_of(s, v2.id)
        )
        # And a live version lost its points.
        runtime.store.delete_version(v1.id)
        before = runtime.store.count()
        report = doctor(s, runtime.sync)
        assert report.orphans_removed == len(service.chunks_of(s, v2.id))
        assert report.reindexed == ["billing-office-hours v1"]
        assert runtime.store.count() == before - report.orphans_removed + len(
            service.chunks_of(s, v1.id)
        )
        assert doctor(s, runtime.sync).healthy


def _articles(runtime: Runtime) -> list:
    from sqlmodel import select

    from governance.models import Article

    with Session(runtime.engine) as s:
        return list(s.exec(select(Article)).all())
