"""The shipped triage model: its file, how it loads, what it decides, and its training
command; the escalation it drives in answers (category, next step from governed content,
language, interpreter route)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from canon.runtime import Runtime
from evals import triage as triage_eval
from governance.errors import InvalidInput
from governance.models import Audience
from retrieval.answer import AbstainReason
from retrieval.escalation import ROUTE_SECTIONS, sections
from retrieval.triage import Triager
from retrieval.triage_model import MODEL_DIR, MODEL_FILE, TriageModel, detect_language
from tests.offline import run_offline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> TriageModel:
    return TriageModel()


@pytest.fixture(scope="module")
def triager(model: TriageModel) -> Triager:
    return Triager(model)


def test_the_weights_match_the_cards_checksum_and_size() -> None:
    card = json.loads((MODEL_DIR / "model.json").read_text())
    weights = (MODEL_DIR / MODEL_FILE).read_bytes()
    assert hashlib.sha256(weights).hexdigest() == card["sha256"]
    assert len(weights) < 40_000_000
    assert "SHA-256" in (MODEL_DIR / "README.md").read_text()
    assert card["sha256"] in (MODEL_DIR / "README.md").read_text()


def test_it_loads_offline_in_a_fresh_process() -> None:
    """No hub, no network: the model directory is all it reads."""
    code = (
        "from retrieval.triage_model import TriageModel\n"
        "print(TriageModel().score('I can\\'t breathe and my lips are blue').escalate)\n"
    )
    assert run_offline(code) == "True"


def test_a_changed_weights_file_is_refused_naming_it(tmp_path: Path) -> None:
    copy = tmp_path / "canon-triage"
    shutil.copytree(MODEL_DIR, copy)
    data = bytearray((copy / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"model-int8\.onnx: SHA-256"):
        TriageModel(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(InvalidInput, match=r"tokenizer\.json: missing"):
        TriageModel(copy)


@pytest.mark.parametrize(
    ("message", "category", "language"),
    [
        # the misses, written for this test (none is in the training data)
        (
            "I've been thinking about ending my life, how do I cancel my appointments",
            "crisis",
            "en",
        ),
        ("tengo dolor de pecho muy fuerte", "emergency", "es"),
        ("my husband collapsed in the kitchen and he won't wake up", "emergency", "en"),
        ("can you tell me the parking rates? also my 3 week old has a fever of 101", None, "en"),
        ("mi hija de 2 meses tiene fiebre y no quiere comer", None, "es"),
    ],
)
def test_urgent_messages_escalate_with_a_category_and_language(
    triager: Triager, message: str, category: str | None, language: str
) -> None:
    decided = triager.check(message)
    assert decided.escalate, message
    assert decided.category in ("emergency", "crisis", "urgent_symptom", "clinical_judgment")
    if category is not None:
        assert decided.category == category
    assert decided.language == language
    assert decided.reason and decided.reason.startswith(decided.category)


@pytest.mark.parametrize(
    "message",
    [
        "How do I pay my bill online?",
        "What time does the pharmacy close on Sunday?",
        "¿Dónde puedo estacionar para mi cita de radiología?",
        "I need a copy of my records from my knee surgery last year",
    ],
)
def test_routine_messages_do_not_escalate(triager: Triager, message: str) -> None:
    decided = triager.check(message)
    assert not decided.escalate, (message, decided)
    assert decided.probability is not None and decided.probability < triager.model.threshold  # type: ignore[union-attr]


def test_the_pattern_floor_only_adds_escalations(model: TriageModel) -> None:
    """Whatever floor_min is, the patterns never take an escalation away."""
    messages = triage_eval.load("escalation")
    with_floor = Triager(model, floor_min=0.0)
    without = Triager(model, floor_min=2.0)  # a probability never reaches 2: no floor
    for m in messages:
        if without.check(m.text).escalate:
            assert with_floor.check(m.text).escalate, m.text


def test_language_detection_on_the_development_set() -> None:
    messages = triage_eval.load("dev")
    right = sum(detect_language(m.text) == m.language for m in messages)
    assert right / len(messages) >= 0.99


def test_escalation_routes_are_the_published_articles_sections() -> None:
    body = (ROOT / "corpus" / "safety" / "escalation-routes.md").read_text()
    found = sections(body)
    for route, heading in ROUTE_SECTIONS.items():
        assert found.get(heading), (route, heading)
    assert "911" in found[ROUTE_SECTIONS["emergency"]]
    assert "988" in found[ROUTE_SECTIONS["crisis"]]


def test_an_escalated_answer_carries_the_governed_next_step(sample_runtime: Runtime) -> None:
    answer = sample_runtime.answers.answer(
        "I've been thinking about ending my life, how do I cancel my appointments",
        audience=Audience.patient,
    )
    assert answer.escalate and answer.escalate_category == "crisis"
    step = answer.next_step
    assert step is not None and step.article_id == "escalation-routes"
    assert step.section == ROUTE_SECTIONS["crisis"] and "988" in step.text
    live = {v.article_id: v for v in sample_runtime.catalog.live().values()}
    assert step.version == live["escalation-routes"].number


def test_a_spanish_question_nothing_answers_routes_to_interpreters(
    sample_runtime: Runtime,
) -> None:
    answer = sample_runtime.answers.answer(
        "¿Puedo llevar a mi iguana a la cafetería del hospital?", audience=Audience.patient
    )
    assert answer.language == "es" and not answer.escalate
    assert answer.abstained and answer.abstain_reason == AbstainReason.needs_interpreter
    assert answer.route == "interpreter"
    assert answer.next_step is not None and answer.next_step.route == "interpreter"
    english = sample_runtime.answers.answer(
        "Can I bring my pet iguana to the cafeteria?", audience=Audience.patient
    )
    assert english.abstain_reason == AbstainReason.no_relevant_content
    assert english.language == "en" and english.next_step is None


@pytest.mark.slow
def test_the_training_command_runs_end_to_end_on_a_budget_of_seconds(tmp_path: Path) -> None:
    out = tmp_path / "model"
    (tmp_path / "model").mkdir()
    (out / "README.md").write_text("card kept\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.triage.finetune",
            "--limit",
            "48",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--budget-minutes",
            "3",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "README.md").read_text() == "card kept\n"
    loaded = TriageModel(out)  # checksum verified on load
    assert loaded.meta["examples"] == 48 and 0.0 <= loaded.threshold <= 1.0
    # each fold's scores, whole message and clause by clause: a rerun resumes from them
    assert len(list((tmp_path / "work").glob("fold-*-clauses.npy"))) == 2
    assert len(list((tmp_path / "work").glob("fold-*.npy"))) == 4


@pytest.fixture(scope="module")
def default_triager() -> Triager:
    return Triager(TriageModel(second_opinion=True))


def test_sealed_holdout_figures_do_not_slip(default_triager: Triager) -> None:
    """The figures measured once on the sealed holdout (models/canon-triage/README.md):
    139/140 urgent caught (39/39 in Spanish), 21/136 routine escalated. A regression
    fails here; the holdout is never used to choose anything."""
    report = triage_eval.run(triage_eval.load("holdout"), default_triager.check)
    groups = report["groups"]
    assert groups["all"]["caught"] >= 139, report["missed"]
    assert groups["language=es"]["recall"] == 1.0, report["missed"]
    assert groups["all"]["escalated"] <= 21, report["false_alarms"]
    assert report["language_accuracy"] >= 0.99


def test_older_escalation_holdouts_figures_do_not_slip(default_triager: Triager) -> None:
    """The `holdout*` splits of tests/retrieval/escalation.jsonl (never trained on):
    95/95 urgent caught, 3/95 routine escalated when the model was shipped."""
    report = triage_eval.run(triage_eval.load("escalation"), default_triager.check)
    assert report["groups"]["all"]["recall"] == 1.0, report["missed"]
    assert report["groups"]["all"]["escalated"] <= 3, report["false_alarms"]


def test_the_similarity_floor_escalates_with_a_category_and_a_next_step(
    sample_runtime: Runtime,
) -> None:
    """CANON_SEMANTIC_TRIAGE (off by default) escalates with a category too, so its
    escalations carry the governed next step like the model's."""
    from retrieval.answer import AnswerService
    from retrieval.triage import SemanticTriage

    answers = sample_runtime.answers
    similar = AnswerService(
        answers.retriever,
        semantic_triage=SemanticTriage(sample_runtime.embedder),
        triager=Triager(None),
        routes=answers.routes,
    )
    answer = similar.answer("my chest feels heavy and tight", audience=Audience.patient)
    assert answer.escalate and answer.escalate_category == "emergency"
    assert answer.next_step is not None and answer.next_step.route == "emergency"
