"""The optional LLM generator against a real HTTP server with scripted replies."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from canon.app import create_app
from canon.runtime import Runtime
from governance import keys
from governance.models import Audience
from retrieval.answer import AbstainReason, AnswerService
from retrieval.generator import LlmGenerator, parse_cited
from retrieval.grounding import GroundingCheck
from retrieval.text import sentences
from tests.retrieval.llm_server import ScriptedLlm, chat, passage_texts, scripted_llm
from tests.retrieval.test_answer import passage

QUESTION = "What are the billing phone hours?"


@pytest.fixture
def llm() -> Iterator[ScriptedLlm]:
    with scripted_llm() as server:
        yield server


@pytest.fixture
def service(sample_runtime: Runtime, llm: ScriptedLlm) -> AnswerService:
    return AnswerService(
        sample_runtime.retriever,
        grounding=GroundingCheck(encoder=sample_runtime.embedder),
        generator=LlmGenerator(llm.url, "scripted-model"),
        min_relevance=sample_runtime.settings.min_relevance,
    )


def first_sentence(messages: list[dict[str, str]], n: int = 1) -> str:
    return sentences(passage_texts(messages)[n])[0]


def test_a_faithful_reply_is_served_with_its_citations(
    service: AnswerService, llm: ScriptedLlm
) -> None:
    llm.script = lambda m: chat(f"{first_sentence(m)} [1]")
    answer = service.answer(QUESTION, audience=Audience.patient)
    assert not answer.abstained and answer.grounded and answer.composer == "llm"
    assert answer.dropped == 0 and len(answer.sentences) == 1
    request = llm.requests[-1]
    assert request["model"] == "scripted-model" and request["temperature"] == 0
    assert "bracket" in request["messages"][0]["content"]
    assert answer.sentences[0].text in answer.sentences[0].passage.text


def test_the_grounding_check_catches_a_hallucinating_reply(
    service: AnswerService, llm: ScriptedLlm
) -> None:
    invented = [
        "The billing office is also open on Sundays from 10 a.m. to 4 p.m. [1]",
        "Every patient gets a 50% discount when paying by phone. [2]",
        "Call the billing office any time. [9]",  # cites a passage it was never shown
    ]
    llm.script = lambda m: chat(" ".join([f"{first_sentence(m)} [1]", *invented]))
    answer = service.answer(QUESTION, audience=Audience.patient)
    assert not answer.abstained and answer.grounded
    assert answer.dropped == 2  # the [9] sentence never becomes a candidate
    texts = " ".join(s.text for s in answer.sentences)
    assert "Sunday" not in texts and "50%" not in texts and "any time" not in texts
    assert any("not supported" in note for note in answer.notes)


def test_a_reply_with_nothing_supported_abstains_with_low_support(
    service: AnswerService, llm: ScriptedLlm
) -> None:
    llm.script = lambda _m: chat("We offer free valet parking around the clock at every site. [1]")
    answer = service.answer(QUESTION, audience=Audience.patient)
    assert answer.abstained and answer.abstain_reason == AbstainReason.low_support
    assert answer.text == "" and answer.sentences == [] and answer.dropped == 1
    assert answer.route == "billing"


def test_insufficient_means_abstain(service: AnswerService, llm: ScriptedLlm) -> None:
    llm.script = lambda _m: chat("INSUFFICIENT")
    answer = service.answer(QUESTION, audience=Audience.patient)
    assert answer.abstained and answer.abstain_reason == AbstainReason.low_support


@pytest.mark.parametrize(
    "reply",
    [
        (200, b"this is not json"),
        (200, b'{"choices": []}'),
        (200, b'{"choices": [{"message": {"content": null}}]}'),
        (200, b'{"error": "overloaded"}'),
        (500, b'{"error": "internal"}'),
    ],
    ids=["not-json", "no-choices", "null-content", "no-choices-key", "http-500"],
)
def test_a_malformed_reply_falls_back_to_an_extractive_answer(
    service: AnswerService, llm: ScriptedLlm, reply: tuple[int, bytes]
) -> None:
    llm.script = lambda _m: reply
    answer = service.answer(QUESTION, audience=Audience.patient)
    assert answer.composer == "extractive" and not answer.abstained and answer.grounded
    assert any("generator failed" in note for note in answer.notes)


def test_a_reply_without_citations_is_never_served(
    service: AnswerService, llm: ScriptedLlm
) -> None:
    llm.script = lambda m: chat(first_sentence(m))  # true text, but no [n]
    answer = service.answer(QUESTION, audience=Audience.patient)
    assert answer.abstained and answer.abstain_reason == AbstainReason.low_support


def test_parse_keeps_markers_with_their_sentence() -> None:
    shown = [
        passage("Open 8 a.m. to 5 p.m. on weekdays.", 0.7, "a"),
        passage("Fax 555-0199.", 0.6, "b"),
    ]
    parsed = parse_cited("We open at 8 a.m. [1] Our fax is 555-0199. [2] [1] No cite here.", shown)
    assert [(t, p.article_id) for t, p in parsed] == [
        ("We open at 8 a.m.", "a"),
        ("Our fax is 555-0199.", "b"),
    ]


def test_the_api_serves_a_checked_llm_answer(sample_runtime: Runtime, llm: ScriptedLlm) -> None:
    with Session(sample_runtime.engine) as s:
        _k, secret = keys.create(s, name="llm-agent", scopes=["answer"], created_by="test")
    invented = "Billing is open on Sundays from 10 a.m. to 4 p.m. [1]"
    llm.script = lambda m: chat(f"{first_sentence(m)} [1] {invented}")
    with TestClient(create_app(sample_runtime), headers={"Authorization": f"Bearer {secret}"}) as c:
        c.app.state.answers = AnswerService(  # type: ignore[attr-defined]
            sample_runtime.retriever,
            grounding=GroundingCheck(encoder=sample_runtime.embedder),
            generator=LlmGenerator(llm.url, "scripted-model"),
        )
        body = c.post("/v1/answer", json={"question": QUESTION}).json()
        assert body["grounded"] and not body["abstained"]
        assert "Sunday" not in body["answer"]
        assert all(0 <= s["citation"] < len(body["citations"]) for s in body["sentences"])
        llm.script = lambda _m: (200, b"garbage")
        assert c.post("/v1/answer", json={"question": QUESTION}).status_code == 200
