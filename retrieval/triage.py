"""Which questions need a human: urgent symptoms and requests for clinical judgment."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from retrieval.triage_model import detect_language

if TYPE_CHECKING:
    from retrieval.triage_model import TriageModel

_URGENT = [
    (
        r"chest (pain|pressure|tightness|hurts)|(pressure|pain|tightness) in (his|her|my|the) chest"
        r"|heart attack",
        "possible cardiac emergency",
    ),
    (r"(can'?t|cannot|trouble|difficulty|hard to|struggling to) breath", "breathing difficulty"),
    (
        r"short(ness)? of breath|barely breathing|not breathing|stopped breathing",
        "breathing difficulty",
    ),
    (
        r"turning blue|blue (lips|around the (mouth|lips))|lips (are )?(turning )?blue",
        "possible lack of oxygen",
    ),
    (
        r"suicid|kill(ing)? (myself|me)|end (my|his|her|their) (own )?life|end it all"
        r"|take (my|his|her) (own )?life|self[- ]harm|hurt(ing)? myself|better off dead"
        r"|do ?n[o']t want to (live|be alive|wake up)",
        "risk of self-harm",
    ),
    (
        r"overdos|took too many|on purpose.{0,20}(pills|tablets)|(pills|tablets).{0,40}on purpose",
        "possible overdose",
    ),
    (
        r"(swallow|drank|drunk|ate|ingest)\w*.{0,40}(pills|medication|medicine|batter(y|ies)"
        r"|bleach|cleaner|antifreeze|detergent|chemical|laundry pod)",
        "possible poisoning",
    ),
    (r"poison", "possible poisoning"),
    (
        r"(heavy|a lot of|lots of|soaking|won'?t stop) bleed|bleeding (heavily|a lot|won'?t stop)"
        r"|bleeding.{0,40}won'?t stop",
        "heavy bleeding",
    ),
    (
        r"(vomit\w*|throwing up|coughing up) blood|blood in (my|his|her|the) (stool|vomit)"
        r"|(black|tarry) stool",
        "possible internal bleeding",
    ),
    (r"pregnan\w*.{0,60}bleed|bleed\w*.{0,60}pregnan", "bleeding in pregnancy"),
    (
        r"pregnan\w*.{0,80}(severe|bad|sharp) (abdominal|belly|stomach) pain"
        r"|(severe|bad|sharp) (abdominal|belly|stomach) pain.{0,80}pregnan",
        "abdominal pain in pregnancy",
    ),
    (
        r"(baby|fetal|fetus).{0,30}(not moving|stopped moving|moving less)"
        r"|(baby|fetus) (has ?n'?t|has not|is ?n'?t|is not|stopped|not|hasn'?t) "
        r"(moved|moving|kick(ed|ing)?)",
        "reduced fetal movement",
    ),
    (r"water (broke|has broken|breaking)", "labor may have started"),
    (
        r"stroke|face (is )?droop|slurred speech|one side.{0,20}(numb|weak)"
        r"|(numb|numbness|weak|weakness).{0,30}one side"
        r"|can'?t (lift|move) (my|his|her) (arm|leg)",
        "possible stroke",
    ),
    (r"(arm|jaw).{0,20}numb", "possible cardiac emergency"),
    (
        r"unconscious|passed out|faint(ed|ing)?\b|unresponsive|not waking up|won'?t wake up"
        r"|going to (faint|pass out)|not (responding|answering)|is ?n'?t (responding|answering)"
        r"|won'?t respond",
        "loss of consciousness",
    ),
    (r"seizure|convuls", "seizure"),
    (
        r"(severe|anaphyla|allergic reaction).{0,40}(swell|throat|breath)"
        r"|(throat|tongue|lips?).{0,20}(swell|clos|tight)|hives.{0,40}(faint|breath|dizzy)",
        "possible anaphylaxis",
    ),
    (r"worst headache", "possible neurological emergency"),
    (
        r"(hit|hurt|bang\w*|bump\w*) (his|her|my|their) head.{0,80}"
        r"(confus|vomit|throwing up|unconscious|sleepy|drowsy)",
        "head injury with warning signs",
    ),
    (
        r"high fever.{0,40}(chemo|infusion|baby|newborn)|(chemo|infusion).{0,60}fever"
        r"|(\d{1,2}[- ]?(week|day)s?[- ]?old|newborn|infant).{0,40}(fever|temperature|temp\b)"
        r"|(fever|temperature).{0,40}(newborn|infant|\d{1,2}[- ]?(week|day)s?[- ]?old)",
        "fever during chemotherapy or in an infant",
    ),
    (r"heart (is )?(racing|pounding).{0,60}(faint|dizzy|chest|breath)", "possible arrhythmia"),
    (
        r"heart(beat)? (is )?(beating )?(1[5-9]\d|2\d\d)\b|heart(beat)? is (really |very )?slow"
        r".{0,40}(black|faint|pass)",
        "possible arrhythmia",
    ),
    (
        r"burn\w*.{0,60}(skin (is )?(peeling|coming off|blister)"
        r"|whole (arm|leg|hand|face|back|chest))"
        r"|(boiling|scald\w*).{0,40}(skin|arm|leg|hand|face|child|baby)|electrocut|electric shock",
        "serious burn or electrical injury",
    ),
    (r"\b(snake|spider)\s*(bite|bit)|bitten by|dog bit\w*.{0,30}(face|deep|neck)", "serious bite"),
    (r"\bstabbed\b|\b(been|got|was) shot\b|gunshot", "penetrating injury"),
    (
        r"(no|don'?t see the|what'?s the) point (in|of) (living|going on|life)"
        r"|end (things|everything)|goodbye (letters?|notes?)|tonight is the night"
        r"|(gun|firearm|pistol|rifle).{0,60}(myself|end|die|living|point)"
        r"|(myself|end|die|living|point).{0,60}(gun|firearm|pistol|rifle)"
        r"|jump (off|from) (a |the )?(bridge|building|roof)|voices telling (me|him|her|them) to"
        r"|(hurt|harm|kill) (my|the) (baby|child|kids?)|(hurt|harm|kill) (people|someone|others)"
        r"|nobody would miss me",
        "risk of harm to self or others",
    ),
    (
        r"can'?t (feel|move) (my|his|her) (legs|arms|body)"
        r"|(is ?n'?t|not) moving (his|her|my) (legs|arms)",
        "possible spinal injury",
    ),
    (
        r"(sudden(ly)?|all of a sudden).{0,40}(confus|not making sense|can'?t understand|slurr)"
        r"|(confus\w*|not making sense|slurr\w*).{0,60}(sudden(ly)?|all of a sudden)",
        "sudden confusion",
    ),
    (
        r"(hit|hurt|bang\w*|bump\w*) (his|her|my|their) head.{0,80}(same question|repeat)"
        r"|\bfell\b.{0,60}(vomit|throwing up|sleepy|drowsy|unconscious|won'?t wake)"
        r"|fell (off|from|out of) (a |the )?(roof|ladder|window|balcony|building|\w+ stor(y|ey))",
        "fall or head injury with warning signs",
    ),
    (
        r"(blood sugar|glucose)( level)? (is|was|reads?|of|at|says) (([0-4]?\d|5[0-4])\b|lo\b|hi\b"
        r"|[4-9]\d\d\b)|(too much|way too much) insulin|insulin.{0,20}too much",
        "dangerous blood sugar",
    ),
    (r"blood pressure.{0,20}\b(1[89]\d|2\d\d)\s*(/|over)", "dangerously high blood pressure"),
    (r"coffee[- ]grounds?", "possible internal bleeding"),
    (
        r"chok(ing|ed|es) on|can'?t cough|drown|fell (in|into|through) (the )?(water|pool|ice)",
        "choking or drowning",
    ),
    (
        r"(chemical|bleach|cleaner|acid).{0,30}(in|into) (my|his|her|their) eyes?"
        r"|stuck in (my|his|her|their) eye"
        r"|(sudden\w*).{0,30}(can'?t see|vision loss|lost (my )?vision|blind)"
        r"|(can'?t see|vision loss|lost (my )?vision).{0,30}sudden",
        "eye emergency",
    ),
    (r"asthma attack|inhaler (is ?n'?t|is not|not) (working|helping)", "breathing difficulty"),
    (r"carbon monoxide|\bco alarm", "possible carbon monoxide poisoning"),
    (r"crushed (under|by)|(chest|head|leg) (got )?crushed", "crush injury"),
    (r"\braped\b|sexual(ly)? assault", "sexual assault"),
    (
        r"\b\d{1,2} weeks\b.{0,60}(headache|blurry|vision|seeing spots|bleed|cramp|kick|swollen)"
        r"|pregnan\w*.{0,80}(headache|blurry|seeing spots)"
        r"|(gave birth|delivered|postpartum|c-section).{0,60}(bleed|chest pain|breath|headache)",
        "warning sign in pregnancy or after birth",
    ),
    (
        r"testic\w*.{0,40}(pain|hurt|swoll)|(pain|hurt\w*).{0,40}testic"
        r"|(haven'?t|not) (peed|urinated)|(purple|non-?blanching) rash"
        r"|rash (that )?(does ?n'?t|won'?t) fade"
        r"|fever.{0,60}(confus|heart (is )?racing)|confus\w*.{0,40}fever"
        r"|(calf|leg).{0,60}swoll\w*.{0,80}(breath|chest)",
        "possible serious infection or clot",
    ),
]

_CLINICAL = [
    (r"should i (stop|start|take|skip|double|change|keep taking)", "asks for medication advice"),
    (r"(is it|is this|is that) (normal|serious|safe|dangerous)", "asks for clinical judgment"),
    (r"(what|which) (dose|dosage)|how (much|many) (mg|pills|tablets)", "asks for dosing advice"),
    (
        r"do i have (a |an |the )?(infection|cancer|covid|flu|diabetes|strep|pneumonia|uti|std"
        r"|sti|disease|condition|virus|concussion|fracture)|what do i have"
        r"|(can|could) you diagnose|diagnose (me|my|this|it)\b"
        r"|do i need to see a doctor",
        "asks for a diagnosis",
    ),
    (
        r"should i (go to|come to) (the )?(er|emergency|hospital)|should i (come in|be worried)"
        r"|can i wait (for|until|till)",
        "asks whether to seek care",
    ),
    (
        r"my (test|lab|biopsy|scan|mri|ct) results? (mean|say|show)|what does my .{0,30}result",
        "asks to interpret results",
    ),
]

_URGENT_RE = [(re.compile(p, re.IGNORECASE), reason) for p, reason in _URGENT]
_CLINICAL_RE = [(re.compile(p, re.IGNORECASE), reason) for p, reason in _CLINICAL]
# The same patterns, case-sensitive, for ASCII questions lowercased first: the patterns are
# lowercase ASCII, so on ASCII text this matches exactly what IGNORECASE does, in half
# the time (IGNORECASE on str also folds Unicode, e.g. 'ſ' matches 's': other text keeps it).
_URGENT_LOWER = [(re.compile(p), reason) for p, reason in _URGENT]
_CLINICAL_LOWER = [(re.compile(p), reason) for p, reason in _CLINICAL]


@dataclass(frozen=True)
class Triage:
    escalate: bool
    reason: str | None = None
    urgent: bool = False
    # emergency, crisis, urgent_symptom or clinical_judgment when `escalate`
    category: str | None = None
    language: str = "en"
    probability: float | None = None  # the triage model's urgent probability, when it ran
    source: str | None = None  # "model", "patterns" or "similarity": what escalated it


# The pattern floor's category for each of its reasons (the others are emergencies).
_CRISIS_REASONS = frozenset(
    {"risk of self-harm", "risk of harm to self or others", "sexual assault", "possible overdose"}
)
_URGENT_SYMPTOM_REASONS = frozenset(
    {
        "fever during chemotherapy or in an infant",
        "warning sign in pregnancy or after birth",
        "possible serious infection or clot",
        "reduced fetal movement",
        "labor may have started",
    }
)


def _pattern_category(reason: str, urgent: bool) -> str:
    if not urgent:
        return "clinical_judgment"
    if reason in _CRISIS_REASONS:
        return "crisis"
    if reason in _URGENT_SYMPTOM_REASONS:
        return "urgent_symptom"
    return "emergency"


def triage(question: str) -> Triage:
    if question.isascii():
        question = question.lower()
        urgent, clinical = _URGENT_LOWER, _CLINICAL_LOWER
    else:
        urgent, clinical = _URGENT_RE, _CLINICAL_RE
    for pattern, reason in urgent:
        if pattern.search(question):
            category = _pattern_category(reason, True)
            return Triage(
                True,
                f"{category}: {reason}; direct the patient to emergency care or a nurse",
                True,
                category,
                source="patterns",
            )
    for pattern, reason in clinical:
        if pattern.search(question):
            return Triage(
                True,
                f"clinical_judgment: {reason}; a clinician must answer",
                category="clinical_judgment",
                source="patterns",
            )
    return Triage(False)


# Short statements of emergencies, one per way people describe them. The semantic
# check compares the question's embedding (already computed for retrieval) with
# these, so it catches phrasings the patterns above do not list.
URGENT_EXEMPLARS: list[tuple[str, str]] = [
    ("I have chest pain", "possible cardiac emergency"),
    ("my chest feels heavy and tight", "possible cardiac emergency"),
    ("pain spreading to my arm and jaw with sweating", "possible cardiac emergency"),
    ("I think I am having a heart attack", "possible cardiac emergency"),
    ("I cannot breathe", "breathing difficulty"),
    ("I am gasping for air and can't get enough air", "breathing difficulty"),
    ("his lips are blue", "possible lack of oxygen"),
    ("I want to kill myself", "risk of self-harm"),
    ("I want to die", "risk of self-harm"),
    ("I have a plan to end my life", "risk of self-harm"),
    ("everyone would be better off without me", "risk of self-harm"),
    ("I am cutting myself", "risk of self-harm"),
    ("I took too many pills", "possible overdose"),
    ("my child swallowed medicine or a chemical", "possible poisoning"),
    ("I am bleeding heavily and it will not stop", "heavy bleeding"),
    ("I am pregnant and bleeding", "bleeding in pregnancy"),
    ("bright red blood during pregnancy", "bleeding in pregnancy"),
    ("the baby is not moving inside me", "reduced fetal movement"),
    ("my face is drooping and my speech is garbled", "possible stroke"),
    ("sudden weakness on one side of the body", "possible stroke"),
    ("sudden confusion and trouble speaking", "possible stroke"),
    ("he collapsed and is not responding", "loss of consciousness"),
    ("she fainted and will not wake up", "loss of consciousness"),
    ("my child is having a seizure", "seizure"),
    ("my throat is closing after eating something", "possible anaphylaxis"),
    ("severe allergic reaction with swelling", "possible anaphylaxis"),
    ("the worst headache of my life", "possible neurological emergency"),
    ("head injury and now vomiting and drowsy", "head injury with warning signs"),
    ("my newborn baby has a fever", "fever in an infant"),
    ("fever while on chemotherapy", "fever during chemotherapy"),
    ("I was in a serious accident and I am hurt", "serious injury"),
    ("severe sudden pain in my belly", "severe abdominal pain"),
    ("I am vomiting blood", "possible internal bleeding"),
    ("my heart is racing and I feel faint", "possible arrhythmia"),
    ("I burned myself badly and the skin is blistering", "serious burn"),
    ("I was bitten by a snake", "serious bite"),
    ("I can't feel or move my legs after a fall", "possible spinal injury"),
    ("there is no point in living anymore", "risk of self-harm"),
    ("my elderly father is suddenly confused", "sudden confusion"),
    ("my blood sugar is dangerously low and I am shaking", "dangerous blood sugar"),
    ("someone is choking and cannot breathe", "choking"),
    ("a bad injury with a lot of blood", "serious injury"),
]

# Ordinary front-door requests that share words with emergencies ("newborn",
# "inhaler", "pregnancy"). A question escalates on similarity only when it is
# closer to an emergency than to every one of these by `margin`.
ROUTINE_EXEMPLARS: list[str] = [
    "How do I refill my prescription?",
    "What should I bring to my appointment?",
    "How do I find a doctor for my baby?",
    "How do I schedule an appointment?",
    "What are the visiting hours?",
    "Can my family member stay with me in the hospital?",
    "Where do I park?",
    "How do I see my test results in the portal?",
    "Who do I call about my bill?",
    "How do I sign up for a class?",
    "What should I expect at my first visit?",
    "How do I get my medical records?",
    "Does my insurance cover this?",
    "When should I go to the hospital when I am in labor?",
    "How do I dispose of old medications?",
]


class TextEncoder(Protocol):
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class SemanticTriage:
    """Urgency by similarity to `URGENT_EXEMPLARS`, on the question's own embedding.

    A question escalates when its best urgent similarity reaches `threshold` and
    beats its best routine similarity (`ROUTINE_EXEMPLARS`) by `margin`. Both were
    chosen on tests/retrieval/escalation.jsonl (every split but `holdout3`) and the
    golden set's non-urgent questions; `holdout3` was written before the choice and
    measured once after it (tests/retrieval/test_abstention.py).
    """

    def __init__(
        self, encoder: TextEncoder, *, threshold: float = 0.38, margin: float = 0.03
    ) -> None:
        self.threshold = threshold
        self.margin = margin
        self._reasons = [reason for _, reason in URGENT_EXEMPLARS]
        texts = [text for text, _ in URGENT_EXEMPLARS] + ROUTINE_EXEMPLARS
        matrix = encoder.embed(texts)
        self._matrix = matrix[: len(URGENT_EXEMPLARS)]
        self._routine = matrix[len(URGENT_EXEMPLARS) :]

    def check(self, vector: npt.NDArray[np.float32]) -> Triage:
        scores = self._matrix @ vector
        best = int(np.argmax(scores))
        urgent = float(scores[best])
        routine = float(np.max(self._routine @ vector))
        if urgent < self.threshold or urgent - routine < self.margin:
            return Triage(False)
        reason = self._reasons[best]
        category = _pattern_category(reason, True)
        return Triage(
            True,
            f"{category}: {reason} (similar to known emergencies); "
            "direct the patient to emergency care or a nurse",
            True,
            category,
            source="similarity",
        )


_ACTIONS = {
    "emergency": "direct the patient to emergency care now",
    "crisis": "connect the patient with crisis support now",
    "urgent_symptom": "a nurse must assess the patient today",
    "clinical_judgment": "a clinician must answer",
}


class Triager:
    """Triage by the trained model, with the patterns as a floor that can only add
    escalations.

    The model (`retrieval.triage_model.TriageModel`) reads the whole message and escalates
    when its urgent probability reaches the threshold chosen at training. A pattern that
    fires on a message the model let through escalates it too when the model's
    probability is at least `floor_min` (0: every pattern hit escalates)."""

    def __init__(self, model: "TriageModel | None", *, floor_min: float | None = None) -> None:
        self.model = model
        # default: what training chose for this model (its card), else every hit escalates
        self.floor_min = (
            floor_min if floor_min is not None else (model.floor_min if model is not None else 0.0)
        )

    def check(self, question: str) -> Triage:
        language = detect_language(question)
        floor = triage(question)
        if self.model is None:
            return replace(floor, language=language)
        scored = self.model.score(question)
        if scored.escalate:
            category = scored.category
            return Triage(
                True,
                f"{category}: the triage model's urgent probability is {scored.urgent:.2f}; "
                f"{_ACTIONS[category]}",
                category in ("emergency", "crisis", "urgent_symptom"),
                category,
                language,
                scored.urgent,
                "model",
            )
        if floor.escalate and scored.urgent >= self.floor_min:
            return replace(floor, language=language, probability=scored.urgent)
        return Triage(False, language=language, probability=scored.urgent)
