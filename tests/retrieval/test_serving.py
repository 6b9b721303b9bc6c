"""The serving shortcuts keep their promises: a cached key still dies on revocation, the
answer log written in the background is readable at once and complete at shutdown, and
batched index queries return exactly what single ones do."""

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from canon.app import create_app
from canon.runtime import Runtime
from governance import answer_log, keys
from governance.answer_log import CitedVersion, Entry
from governance.freshness import FreshnessMode, FreshnessPolicy
from governance.models import AnswerCitation, AnswerLog, Audience
from retrieval.answer import AbstainReason
from retrieval.batching import TickBatcher
from retrieval.hybrid import Passage, Retriever


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as client:
        yield client


def test_a_cached_key_fails_on_the_next_request_after_revocation(
    client: TestClient, runtime: Runtime
) -> None:
    with Session(runtime.engine) as s:
        key, secret = keys.create(s, name="agent", scopes=["answer"], created_by="test")
    for _ in range(3):  # authenticated from the cache after the first
        response = client.post("/v1/search", json={"question": "hours"}, headers=_bearer(secret))
        assert response.status_code == 200, response.text
    with Session(runtime.engine) as s:  # as `canon keys revoke` does, from any process
        keys.revoke(s, key.prefix, by="admin")
    for path in ("/v1/search", "/v1/answer"):
        refused = client.post(path, json={"question": "hours"}, headers=_bearer(secret))
        assert refused.status_code == 401
        assert "revoked" in refused.json()["error"]["message"]


def test_the_cache_matches_the_whole_key_not_its_prefix(
    client: TestClient, runtime: Runtime
) -> None:
    with Session(runtime.engine) as s:
        _key, secret = keys.create(s, name="agent", scopes=["answer"], created_by="test")
    assert client.post("/v1/search", json={"question": "x"}, headers=_bearer(secret)).is_success
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert (
        client.post("/v1/search", json={"question": "x"}, headers=_bearer(forged)).status_code
        == 401
    )


def test_pins_still_hold_for_a_cached_key(client: TestClient, runtime: Runtime) -> None:
    with Session(runtime.engine) as s:
        _key, secret = keys.create(
            s, name="chat", scopes=["answer"], created_by="test", audience=Audience.patient
        )
    h = _bearer(secret)
    assert client.post("/v1/search", json={"question": "x"}, headers=h).status_code == 200
    staff = {"question": "x", "audience": "staff"}
    assert client.post("/v1/search", json=staff, headers=h).status_code == 403
    assert client.post("/v1/answer", json=staff, headers=h).status_code == 403


def test_every_answer_given_is_in_the_log_once_the_server_stops(sample_runtime: Runtime) -> None:
    with Session(sample_runtime.engine) as s:
        _key, secret = keys.create(s, name="shutdown", scopes=["answer"], created_by="test")
    ids = []
    with TestClient(create_app(sample_runtime)) as client:
        for question in ["billing phone hours?", "Where do I park?", "MRI preparation"] * 4:
            body = client.post(
                "/v1/answer", json={"question": question}, headers=_bearer(secret)
            ).json()
            ids.append(body["answer_id"])
    with Session(sample_runtime.engine) as s:
        stored = s.exec(select(AnswerLog.id).where(AnswerLog.key_name == "shutdown")).all()
    assert sorted(stored) == sorted(ids)


def _entry(engine: Engine, version_id: int) -> Entry:
    return Entry(
        id=answer_log.new_id(),
        question="call me on 617-555-0142",
        answer="",
        channel="chat",
        audience=Audience.patient,
        key_name="writer",
        abstained=True,
        abstain_reason="no_relevant_content",
        escalate=False,
        grounded=False,
        support=0.0,
        citations=(CitedVersion("a", version_id, 1, "s"),),
    )


def test_the_writer_flushes_on_demand_and_one_bad_entry_costs_only_itself(
    sample_runtime: Runtime,
) -> None:
    engine = sample_runtime.engine
    live = next(iter(sample_runtime.catalog.live()))
    writer = answer_log.Writer(engine)
    good = [writer.submit(_entry(engine, live)) for _ in range(5)]
    bad = writer.submit(_entry(engine, 10**9))  # cites no stored version: the insert fails
    good.append(writer.submit(_entry(engine, live)))
    writer.flush()
    with Session(engine) as s:
        stored = set(s.exec(select(AnswerLog.id).where(AnswerLog.key_name == "writer")).all())
        cited = s.exec(select(AnswerCitation).where(AnswerCitation.answer_id == good[0])).all()
        questions = s.exec(select(AnswerLog.question_deid).where(AnswerLog.id == good[0])).all()
    assert set(good) <= stored and bad not in stored
    assert [c.version_id for c in cited] == [live]
    assert "555-0142" not in questions[0]
    assert writer.failed == 1
    writer.close()


def test_flush_and_close_do_not_wait_out_the_writers_linger(sample_runtime: Runtime) -> None:
    """Answers gather for `linger_ms` before a write; a reader's flush (and shutdown)
    wakes the writer at once instead of waiting the rest of it."""
    engine = sample_runtime.engine
    live = next(iter(sample_runtime.catalog.live()))
    writer = answer_log.Writer(engine, linger_ms=30_000)
    try:
        first = writer.submit(_entry(engine, live))
        time.sleep(0.05)  # the writer is asleep in its linger now
        began = time.monotonic()
        writer.flush()
        assert time.monotonic() - began < 5
        second = writer.submit(_entry(engine, live))
        time.sleep(0.05)
        began = time.monotonic()
    finally:
        writer.close()
    assert time.monotonic() - began < 5
    with Session(engine) as s:
        stored = set(s.exec(select(AnswerLog.id).where(AnswerLog.key_name == "writer")).all())
    assert {first, second} <= stored
    assert writer.written >= 2


def test_batched_index_queries_return_what_single_queries_return(sample_runtime: Runtime) -> None:
    from evals import datasets

    retriever = sample_runtime.retriever
    asked = [(q.question, q.audience) for q in datasets.load("sample")[:24]]
    vectors = sample_runtime.embedder.embed([text for text, _ in asked])

    async def together() -> list[list[Passage]]:
        return await asyncio.gather(
            *(
                retriever.search_async(text, vector, audience=audience)
                for (text, audience), vector in zip(asked, vectors, strict=True)
            )
        )

    batches_before = retriever._batched.batches
    batched = asyncio.run(together())
    assert retriever._batched.batches == batches_before + 1  # one query_batch for all 24
    single = [
        retriever.search(text, audience=audience, query_vector=vector)
        for (text, audience), vector in zip(asked, vectors, strict=True)
    ]
    for got, expected in zip(batched, single, strict=True):
        # Fusion scores tie often (RRF of ranks), and ties may come back in either order.
        assert [round(p.score, 6) for p in got] == [round(p.score, 6) for p in expected]
        for score in {round(p.score, 6) for p in expected}:
            ids = {p.point_id for p in got if round(p.score, 6) == score}
            if len(ids) == 1:
                assert ids == {p.point_id for p in expected if round(p.score, 6) == score}


def test_a_failing_batch_fails_each_of_its_callers() -> None:
    def run(items: list[int]) -> list[int]:
        if 3 in items:
            raise ValueError("bad batch")
        return [i * 2 for i in items]

    batcher: TickBatcher[int, int] = TickBatcher(run)

    async def main() -> tuple[list[int], list[BaseException | int]]:
        ok = await asyncio.gather(*(batcher.submit(i) for i in (1, 2)))
        bad = await asyncio.gather(*(batcher.submit(i) for i in (3, 4)), return_exceptions=True)
        return ok, bad

    ok, bad = asyncio.run(main())
    assert ok == [2, 4]
    assert all(isinstance(b, ValueError) for b in bad)


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Wrap `owner.name` so each call appends to the returned list."""
    calls: list[int] = []
    real = getattr(owner, name)

    def counted() -> Any:
        calls.append(1)
        return real()

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_requests_resumed_together_share_one_epoch_read(
    sample_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evals import datasets

    retriever = sample_runtime.retriever
    catalog = retriever.catalog
    asked = [(q.question, q.audience) for q in datasets.load("sample")[:12]]
    vectors = sample_runtime.embedder.embed([text for text, _ in asked])
    reads = _count_calls(monkeypatch, catalog, "epoch")

    async def together() -> list[list[Passage]]:
        return await asyncio.gather(
            *(
                retriever.search_async(text, vector, audience=audience)
                for (text, audience), vector in zip(asked, vectors, strict=True)
            )
        )

    found = asyncio.run(together())
    assert len(reads) == 1  # one read of the published set's epoch for all 12
    assert all(found)


def test_keys_waiting_together_share_one_sequence_read_and_revocation_still_bites(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from governance.errors import Unauthenticated
    from governance.keys import KeyCache
    from retrieval.api import caller

    with Session(runtime.engine) as s:
        key, secret = keys.create(s, name="agent", scopes=["answer"], created_by="test")
    cache = KeyCache(runtime.engine)
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(keys=cache)))
    credentials: Any = SimpleNamespace(credentials=secret)
    reads = _count_calls(monkeypatch, cache, "sequence")

    async def ten() -> list[Any]:
        return await asyncio.gather(
            *(caller(request, credentials) for _ in range(10)), return_exceptions=True
        )

    cache.authenticate(secret)  # the first sight of a key reads it from the database
    first = asyncio.run(ten())
    assert [p.name for p in first] == ["agent"] * 10
    assert len(reads) == 1  # one sequence read for the ten, all served from the cache
    with Session(runtime.engine) as s:
        keys.revoke(s, key.prefix, by="admin")
    after = asyncio.run(ten())
    assert all(isinstance(r, Unauthenticated) for r in after), after


@pytest.mark.parametrize("mode", list(FreshnessMode))
@pytest.mark.parametrize("years_later", [0, 3])
def test_reading_hits_until_top_k_serves_what_reading_them_all_did(
    sample_runtime: Runtime, mode: FreshnessMode, years_later: int
) -> None:
    """Retrieval reads payloads and vectors of its first `top_k` hits with the query and
    stops once it has `top_k` passages that nothing after can precede; the passages are
    those a full read gives (checked hit by hit). Three years on, content is stale or
    expired, so downranking and withholding are exercised as well."""
    from evals import datasets

    rt = sample_runtime
    later = date.today() + timedelta(days=365 * years_later)
    retriever = Retriever(
        rt.store,
        rt.embedder,
        rt.sparse,
        rt.catalog,
        freshness=FreshnessPolicy(mode=mode),
        today=lambda: later,
    )
    asked = [(q.question, q.audience) for q in datasets.load("sample")]
    vectors = rt.embedder.embed([text for text, _ in asked])
    live = rt.catalog.live()
    stale_seen = 0
    for (text, audience), vector in zip(asked, vectors, strict=True):
        got = retriever.search(text, audience=audience, query_vector=vector)
        query = retriever._query(text, vector, audience, (), 5, "hybrid")
        assert query is not None and query.load == 5
        every = sorted(
            rt.store.query_many([replace(query, load=0)])[0], key=lambda h: (-h.score, h.id)
        )
        kept = [
            p for hit in every for p in retriever._passages(text, vector, [hit], live, audience, 1)
        ]
        later_ones = [p for p in kept if p.stale and mode == FreshnessMode.downrank]
        expected = ([p for p in kept if p not in later_ones] + later_ones)[:5]
        assert got == expected, text
        stale_seen += sum(p.stale for p in kept)
    assert stale_seen > 0  # the sample corpus has content past its review date already


def test_async_answers_batch_the_abstention_probes_and_say_what_sync_answers_say(
    sample_runtime: Runtime,
) -> None:
    """`answer_async` runs `_why_nothing`'s probes as batched index queries: the same
    abstentions, reasons and routes as `answer`, whose probes are plain searches, in a
    few batches for all the concurrent requests instead of one query per probe."""
    from evals import datasets

    service = sample_runtime.answers
    questions = [q.question for q in datasets.load("sample")]
    asked = [
        (text, audience, lines)
        for text in questions
        for audience in Audience
        for lines in ((), ("billing",))
    ]
    vectors = sample_runtime.embedder.embed(questions)
    vector_of = dict(zip(questions, vectors, strict=True))

    async def together() -> list[Any]:
        return await asyncio.gather(
            *(
                service.answer_async(text, vector_of[text], audience=audience, service_lines=lines)
                for text, audience, lines in asked
            )
        )

    batches_before = service.retriever._batched.batches
    concurrent = asyncio.run(together())
    batches = service.retriever._batched.batches - batches_before
    assert batches <= 3  # the questions, then each probe step for all that need it
    reasons = set()
    for (text, audience, lines), got in zip(asked, concurrent, strict=True):
        expected = service.answer(
            text, audience=audience, service_lines=lines, vector=vector_of[text]
        )
        assert (got.abstained, got.abstain_reason, got.route) == (
            expected.abstained,
            expected.abstain_reason,
            expected.route,
        ), (text, audience, lines)
        assert got.text == expected.text
        reasons.add(got.abstain_reason)
    # every probe outcome was exercised
    assert {
        AbstainReason.out_of_scope,
        AbstainReason.restricted,
        AbstainReason.no_relevant_content,
    } <= reasons


def test_async_answers_run_in_a_worker_thread_when_a_generator_waits(
    sample_runtime: Runtime,
) -> None:
    """With an LLM generator (or a reranker) the answer may wait on a slow endpoint, so
    `answer_async` runs all of `answer` in a worker thread, not on the loop."""
    from retrieval.answer import AnswerService
    from retrieval.generator import GeneratorError

    threads: list[int] = []

    class Failing:  # an endpoint that is down: the answer falls back to extractive
        def compose(self, *_args: Any) -> Any:
            threads.append(threading.get_ident())
            raise GeneratorError("down")

    base = sample_runtime.answers
    service = AnswerService(base.retriever, generator=Failing())  # type: ignore[arg-type]
    assert service.waits
    question = "When is the billing office open on Saturday?"
    vector = sample_runtime.embedder.embed([question])[0]

    async def on_loop() -> tuple[Any, int]:
        return (
            await service.answer_async(question, vector, audience=Audience.patient),
            threading.get_ident(),
        )

    got, loop_thread = asyncio.run(on_loop())
    expected = service.answer(question, audience=Audience.patient, vector=vector)
    assert threads and threads[0] != loop_thread
    assert not got.abstained and got.text == expected.text
    assert "The generator failed; this answer is extractive." in got.notes
