"""Which questions need a human: urgent symptoms and requests for clinical judgment."""

import re
from dataclasses import dataclass

_URGENT = [
    (r"chest (pain|pressure|tightness)", "possible cardiac emergency"),
    (r"(can'?t|cannot|trouble|difficulty|hard to|struggling to) breath", "breathing difficulty"),
    (r"short(ness)? of breath", "breathing difficulty"),
    (
        r"suicid|kill (myself|me)|end (my|it all)|self[- ]harm|hurt(ing)? myself",
        "risk of self-harm",
    ),
    (r"overdos", "possible overdose"),
    (
        r"(heavy|a lot of|lots of|soaking|won'?t stop) bleed|bleeding (heavily|a lot|won'?t stop)",
        "heavy bleeding",
    ),
    (r"pregnan\w*.{0,60}bleed|bleed\w*.{0,60}pregnan", "bleeding in pregnancy"),
    (r"(baby|fetal).{0,30}(not moving|stopped moving|moving less)", "reduced fetal movement"),
    (r"water (broke|has broken|breaking)", "labor may have started"),
    (r"stroke|face (is )?droop|slurred speech|one side.{0,20}(numb|weak)", "possible stroke"),
    (r"(arm|jaw).{0,20}numb", "possible cardiac emergency"),
    (r"unconscious|passed out|faint(ed|ing)|unresponsive", "loss of consciousness"),
    (r"seizure", "seizure"),
    (
        r"(severe|anaphyla|allergic reaction).{0,40}(swell|throat|breath)"
        r"|throat.{0,20}(swell|clos)",
        "possible anaphylaxis",
    ),
    (r"worst headache", "possible neurological emergency"),
    (
        r"high fever.{0,40}(chemo|infusion|baby|newborn)|(chemo|infusion).{0,60}fever",
        "fever during chemotherapy or in an infant",
    ),
    (r"poison", "possible poisoning"),
]

_CLINICAL = [
    (r"should i (stop|start|take|skip|double|change|keep taking)", "asks for medication advice"),
    (r"(is it|is this) (normal|serious|safe|dangerous)", "asks for clinical judgment"),
    (r"(what|which) (dose|dosage)|how (much|many) (mg|pills|tablets)", "asks for dosing advice"),
    (r"do i (have|need to see a doctor)|what do i have|diagnos", "asks for a diagnosis"),
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
