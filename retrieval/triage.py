"""Which questions need a human: urgent symptoms and requests for clinical judgment."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

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
        r"|going to (faint|pass out)",
        "loss of consciousness",
    ),
    (r"seizure|convuls", "seizure"),
    (
        r"(severe|anaphyla|allergic reaction).{0,40}(swell|throat|breath)"
        r"|(throat|tongue|lips?).{0,20}(swell|clos)",
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
        r"|(\d{1,2}[- ]?(week|day)s?[- ]?old|newborn|infant).{0,40}fever"
        r"|fever.{0,40}(newborn|infant|\d{1,2}[- ]?(week|day)s?[- ]?old)",
        "fever during chemotherapy or in an infant",
    ),
    (r"heart (is )?(racing|pounding).{0,60}(faint|dizzy|chest|breath)", "possible arrhythmia"),
]

_CLINICAL = [
    (r"should i (stop|start|take|skip|double|change|keep taking)", "asks for medication advice"),
    (r"(is it|is this) (normal|serious|safe|dangerous)", "asks for clinical judgment"),
    (r"(what|which) (dose|dosage)|how (much|many) (mg|pills|tablets)", "asks for dosing advice"),
    (
        r"do i have (a |an |the )?(infection|cancer|covid|flu|diabetes|strep|pneumonia|uti|std"
        r"|sti|disease|condition|virus|concussion|fracture)|what do i have|diagnos"
        r"|do i need to see a doctor",
        "asks for a diagnosis",
    ),
    (
        r"should i (go to|come to) (the )?(er|emergency|hospital)|should i (come in|be worried)",
        "asks whether to seek care",
    ),
    (
        r"my (test|lab|biopsy|scan|mri|ct) results? (mean|say|show)|what does my .{0,30}result",
        "asks to interpret results",
    ),
]

_URGENT_RE = [(re.compile(p, re.IGNORECASE), reason) for p, reason in _URGENT]
_CLINICAL_RE = [(re.compile(p, re.IGNORECASE), reason) for p, reason in _CLINICAL]


@dataclass(frozen=True)
class Triage:
    escalate: bool
    reason: str | None = None
    urgent: bool = False


def triage(question: str) -> Triage:
    for pattern, reason in _URGENT_RE:
        if pattern.search(question):
            return Triage(
                True, f"urgent: {reason}; direct the patient to emergency care or a nurse", True
            )
    for pattern, reason in _CLINICAL_RE:
        if pattern.search(question):
            return Triage(True, f"clinical: {reason}; a clinician must answer")
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
]


class TextEncoder(Protocol):
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class SemanticTriage:
    """Urgency by similarity to `URGENT_EXEMPLARS`, on the question's own embedding.

    The threshold (0.40) was chosen on tests/retrieval/escalation.jsonl, all splits,
    against the golden set's non-urgent questions (5.8% of them escalate at 0.40).
    """

    def __init__(self, encoder: TextEncoder, *, threshold: float = 0.40) -> None:
        self.threshold = threshold
        self._reasons = [reason for _, reason in URGENT_EXEMPLARS]
        self._matrix = encoder.embed([text for text, _ in URGENT_EXEMPLARS])

    def check(self, vector: npt.NDArray[np.float32]) -> Triage:
        scores = self._matrix @ vector
        best = int(np.argmax(scores))
        if float(scores[best]) < self.threshold:
            return Triage(False)
        return Triage(
            True,
            f"urgent: {self._reasons[best]} (similar to known emergencies); "
            "direct the patient to emergency care or a nurse",
            True,
        )
