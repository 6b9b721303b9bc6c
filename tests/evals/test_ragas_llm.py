"""ragas's LLM-judged metrics (Faithfulness, ResponseRelevancy) through langchain's
ChatOpenAI against a real local OpenAI-compatible server with a scripted judge.

The judge answers ragas's own prompts by rule: statements are the answer's sentences,
a statement is supported iff it appears (normalised) in the context, and the question
an answer "answers" is built from the answer's first sentence. So every score below is
computed by ragas from real HTTP round trips; the test proves the plumbing and the
scoring arithmetic, not the quality of any real judge model.
"""

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from canon.runtime import Runtime
from evals import datasets, ragas_metrics, suites
from retrieval.embed import Embedder
from retrieval.text import sentences
from tests.retrieval.llm_server import ScriptedLlm, chat, scripted_llm

QUESTION = "What are the billing office phone hours?"
CONTEXT = (
    "The billing office answers phone calls from 8 a.m. to 5 p.m., Monday to Friday. "
    "Outside those hours you can leave a voicemail and we call back the next business day. "
    "Payment plans are available for balances over $200."
)
FAITHFUL = (
    "The billing office answers phone calls from 8 a.m. to 5 p.m., Monday to Friday. "
    "Outside those hours you can leave a voicemail and we call back the next business day."
)
HALF = (
    "The billing office answers phone calls from 8 a.m. to 5 p.m., Monday to Friday. "
    "Every patient gets a 50% discount when paying by phone."
)
INVENTED = (
    "The billing office is open on Sundays from 10 a.m. to 4 p.m. "
    "Valet parking is free around the clock at every site."
)
OFF_TOPIC = "Valet parking is free around the clock at every site."
NONCOMMITTAL = "I don't know."


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s$%.,:]", " ", text.lower()).split()).rstrip(".")


def _prompt_input(prompt: str) -> dict[str, Any]:
    """The JSON input ragas's PydanticPrompt renders after its examples."""
    match = re.search(r"\ninput: (\{.*\})\nOutput: $", prompt, re.S)
    assert match, f"not a ragas prompt: {prompt[-300:]!r}"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def judge(messages: list[dict[str, str]]) -> tuple[int, bytes]:
    """A deterministic judge for the three ragas prompts these metrics send."""
    prompt = messages[-1]["content"]
    data = _prompt_input(prompt)
    if set(data) == {"question", "answer"}:  # Faithfulness: StatementGeneratorPrompt
        assert prompt.startswith("Given a question and an answer, analyze the complexity")
        return chat(json.dumps({"statements": sentences(data["answer"])}))
    if set(data) == {"context", "statements"}:  # Faithfulness: NLIStatementPrompt
        assert prompt.startswith("Your task is to judge the faithfulness")
        context = _norm(data["context"])
        verdicts = [
            {
                "statement": s,
                "reason": "stated in the context" if _norm(s) in context else "not in it",
                "verdict": int(_norm(s) in context),
            }
            for s in data["statements"]
        ]
        return chat(json.dumps({"statements": verdicts}))
    if set(data) == {"response"}:  # ResponseRelevancy: ResponseRelevancePrompt
        assert prompt.startswith("Generate a question for the given answer")
        response = data["response"]
        evasive = any(p in response.lower() for p in ("i don't know", "not sure"))
        first = sentences(response)[0].rstrip(".")
        return chat(json.dumps({"question": f"What about {first}?", "noncommittal": int(evasive)}))
    raise AssertionError(f"unexpected prompt: {prompt[:200]!r}")


def sample(response: str, question: str = QUESTION) -> dict[str, Any]:
    return {
        "user_input": question,
        "response": response,
        "reference": FAITHFUL,
        "retrieved_contexts": [CONTEXT],
    }


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedLlm]:
    with scripted_llm() as server:
        server.script = judge
        monkeypatch.setenv("CANON_LLM_BASE_URL", server.url)
        monkeypatch.setenv("CANON_LLM_MODEL", "scripted-judge")
        monkeypatch.setenv("CANON_LLM_TIMEOUT", "5")
        yield server


def _prompts(server: ScriptedLlm) -> list[str]:
    return [r["messages"][-1]["content"] for r in server.requests]


@pytest.mark.parametrize(
    ("response", "expected", "statements"),
    [(FAITHFUL, 1.0, 2), (HALF, 0.5, 2), (INVENTED, 0.0, 2)],
    ids=["faithful", "half-hallucinated", "invented"],
)
def test_faithfulness_is_the_share_of_statements_the_judge_finds_in_the_context(
    llm: ScriptedLlm, response: str, expected: float, statements: int
) -> None:
    notes: list[str] = []
    scores = ragas_metrics.score([sample(response)], notes=notes)
    assert scores["ragas_faithfulness"] == pytest.approx(expected)
    assert "ragas_answer_relevancy" not in scores  # needs an embedder
    assert "ragas_string_similarity" in scores and notes == []
    # Two real round trips: statements, then one verdict per statement.
    assert len(llm.requests) == 2
    assert all(r["model"] == "scripted-judge" for r in llm.requests)
    nli = _prompt_input(_prompts(llm)[1])
    assert nli["context"] == CONTEXT and len(nli["statements"]) == statements


def test_faithfulness_averages_over_samples(llm: ScriptedLlm) -> None:
    scores = ragas_metrics.score([sample(FAITHFUL), sample(HALF), sample(INVENTED)])
    assert scores["ragas_faithfulness"] == pytest.approx(0.5)
    assert len(llm.requests) == 6


def test_answer_relevancy_ranks_an_on_topic_answer_above_an_off_topic_one(
    llm: ScriptedLlm, embedder: Embedder
) -> None:
    def relevancy(response: str) -> float:
        return ragas_metrics.score([sample(response)], embed_query=embedder.embed_query)[
            "ragas_answer_relevancy"
        ]

    on_topic, off_topic = relevancy(FAITHFUL), relevancy(OFF_TOPIC)
    assert 0.0 < off_topic < on_topic <= 1.0
    assert on_topic - off_topic > 0.2
    # ragas asks its strictness (3) questions, one request each (bypass_n).
    asked = [p for p in _prompts(llm) if p.startswith("Generate a question")]
    assert len(asked) == 6 and all(r.get("n", 1) == 1 for r in llm.requests)
    # A noncommittal answer scores 0 whatever its question's similarity.
    assert relevancy(NONCOMMITTAL) == 0.0


def test_a_malformed_judge_reply_is_a_note_not_a_crash(llm: ScriptedLlm) -> None:
    llm.script = lambda _m: chat("Sure! The statements are: all of them.")
    notes: list[str] = []
    scores = ragas_metrics.score([sample(FAITHFUL), sample(HALF)], notes=notes)
    assert "ragas_faithfulness" not in scores
    assert scores["ragas_string_similarity"] > 0
    assert len(notes) == 1
    assert notes[0].startswith("ragas_faithfulness: the judge failed on 2 of 2 samples")
    assert notes[0].endswith("not reported")


def test_one_unparseable_reply_leaves_the_mean_over_the_rest_with_a_note(
    llm: ScriptedLlm,
) -> None:
    def flaky(messages: list[dict[str, str]]) -> tuple[int, bytes]:
        if INVENTED in messages[-1]["content"]:
            return chat("no JSON here")
        return judge(messages)

    llm.script = flaky
    notes: list[str] = []
    scores = ragas_metrics.score([sample(FAITHFUL), sample(INVENTED), sample(HALF)], notes=notes)
    assert scores["ragas_faithfulness"] == pytest.approx(0.75)
    assert len(notes) == 1 and "failed on 1 of 3 samples" in notes[0]


def test_a_sample_ragas_cannot_score_is_left_out_of_the_mean_with_a_note(
    llm: ScriptedLlm,
) -> None:
    def no_statements(messages: list[dict[str, str]]) -> tuple[int, bytes]:
        if _prompt_input(messages[-1]["content"]).get("answer") == INVENTED:
            return chat(json.dumps({"statements": []}))
        return judge(messages)

    llm.script = no_statements
    notes: list[str] = []
    scores = ragas_metrics.score([sample(FAITHFUL), sample(INVENTED), sample(HALF)], notes=notes)
    assert scores["ragas_faithfulness"] == pytest.approx(0.75)
    assert notes == ["ragas_faithfulness: ragas gave no score (NaN) for 1 of 3 samples"]


def test_an_http_error_stops_the_llm_metrics_with_a_note(
    llm: ScriptedLlm, embedder: Embedder
) -> None:
    llm.script = lambda _m: (500, b'{"error": {"message": "model not loaded"}}')
    notes: list[str] = []
    started = time.monotonic()
    scores = ragas_metrics.score(
        [sample(FAITHFUL), sample(HALF)], embed_query=embedder.embed_query, notes=notes
    )
    assert time.monotonic() - started < 10
    assert not set(scores) & set(ragas_metrics.LLM_METRICS)
    assert "ragas_string_similarity" in scores
    assert len(notes) == 1 and "stopped at sample 1 of 2" in notes[0]
    assert "InternalServerError" in notes[0] and "model not loaded" in notes[0]
    assert len(llm.requests) == 2  # the first request and the client's one retry, no more


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_endpoint_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANON_LLM_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.setenv("CANON_LLM_MODEL", "nobody-home")
    notes: list[str] = []
    scores = ragas_metrics.score([sample(FAITHFUL)], notes=notes)
    assert "ragas_faithfulness" not in scores and "ragas_string_similarity" in scores
    assert len(notes) == 1 and "APIConnectionError" in notes[0]


def test_a_hung_endpoint_times_out_instead_of_hanging_the_eval(
    llm: ScriptedLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def hang(_m: list[dict[str, str]]) -> tuple[int, bytes]:
        release.wait(10)
        return chat("{}")

    llm.script = hang
    monkeypatch.setenv("CANON_LLM_TIMEOUT", "0.5")
    notes: list[str] = []
    started = time.monotonic()
    try:
        scores = ragas_metrics.score([sample(FAITHFUL)], notes=notes)
    finally:
        release.set()
    assert time.monotonic() - started < 8
    assert "ragas_faithfulness" not in scores
    assert len(notes) == 1 and "APITimeoutError" in notes[0]


def test_unset_or_blank_endpoint_skips_the_llm_metrics_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CANON_LLM_BASE_URL", "  ")
    monkeypatch.setenv("CANON_LLM_MODEL", "scripted-judge")
    notes: list[str] = []
    scores = ragas_metrics.score([sample(FAITHFUL)], notes=notes)
    assert "ragas_faithfulness" not in scores and "ragas_string_similarity" in scores
    assert notes == [
        "ragas faithfulness and answer relevancy skipped: no CANON_LLM_BASE_URL and CANON_LLM_MODEL"
    ]


def test_a_bad_timeout_is_a_clear_error(llm: ScriptedLlm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANON_LLM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="CANON_LLM_TIMEOUT='soon'"):
        ragas_metrics.score([sample(FAITHFUL)])
    assert llm.requests == []


def test_the_answers_suite_reports_a_dead_judge_in_its_notes(
    sample_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANON_LLM_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.setenv("CANON_LLM_MODEL", "nobody-home")
    questions = [q for q in datasets.load("sample") if q.answerable][:3]
    result = suites.answers(sample_runtime, questions)
    metrics = result["configurations"]["hybrid"]
    assert "ragas_string_similarity" in metrics
    assert not set(metrics) & set(ragas_metrics.LLM_METRICS)
    assert len(result["notes"]) == 1
    assert (
        "stopped at sample 1" in result["notes"][0] and "APIConnectionError" in result["notes"][0]
    )


def test_ragas_usage_telemetry_is_off() -> None:
    """ragas posts usage events to its vendor unless RAGAS_DO_NOT_TRACK is true."""
    from ragas._analytics import do_not_track

    assert do_not_track()
