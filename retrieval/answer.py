"""Extractive answers: pick the sentences that answer, cite each one, check each one."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from governance.models import Audience
from retrieval.grounding import GroundingCheck
from retrieval.hybrid import Passage, Retriever
from retrieval.text import content_terms, sentences
from retrieval.triage import triage


class Channel(StrEnum):
    chat = "chat"
    app = "app"
    sms = "sms"
    voice = "voice"


# (most sentences, most characters) an answer may use on a channel.
BUDGETS: dict[Channel, tuple[int, int]] = {
    Channel.chat: (4, 700),
    Channel.app: (5, 900),
    Channel.sms: (2, 320),
    Channel.voice: (2, 280),
}


class AbstainReason(StrEnum):
    no_relevant_content = "no_relevant_content"
    low_support = "low_support"
    restricted = "restricted"
    out_of_scope = "out_of_scope"


@dataclass(frozen=True)
class CitedSentence:
    text: str
    passage: Passage
    support: float


@dataclass(frozen=True)
class Answer:
    text: str
    sentences: list[CitedSentence]
    passages: list[Passage]
    grounded: bool
    support: float
    abstained: bool
    abstain_reason: AbstainReason | None = None
    escalate: bool = False
    escalate_reason: str | None = None
    clinical: bool = False
    stale: bool = False
    route: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    text: str
    passage: Passage
    passage_rank: int
    position: int
    score: float


class ExtractiveComposer:
    """Chooses sentences from the best passage, adding neighbours in passage order."""

    def __init__(self, *, relevance_margin: float = 0.08) -> None:
        self.relevance_margin = relevance_margin

    def compose(
        self, question: str, passages: Sequence[Passage], channel: Channel
    ) -> list[tuple[str, Passage]]:
        if not passages:
            return []
        max_sentences, max_chars = BUDGETS[channel]
        query = content_terms(question)
        best = passages[0]
        pool = [
            (rank, p)
            for rank, p in enumerate(passages[:3])
            if p.relevance >= best.relevance - self.relevance_margin
        ]
        candidates: list[_Candidate] = []
        for rank, passage in pool:
            heading = content_terms(passage.section)
            for position, sentence in enumerate(sentences(passage.text)):
                terms = content_terms(sentence)
                overlap = len(query & terms) + 0.5 * len(query & heading)
                score = overlap / (1.0 + 0.02 * len(terms)) - 0.3 * rank - 0.05 * position
                candidates.append(_Candidate(sentence, passage, rank, position, score))
        if not candidates:
            return []
        lead = max(candidates, key=lambda c: c.score)
        chosen = [lead]
        used = len(lead.text)
        same_passage = sorted(
            (c for c in candidates if c.passage_rank == lead.passage_rank and c is not lead),
            key=lambda c: (-c.score, c.position),
        )
        for candidate in same_passage:
            if len(chosen) >= max_sentences or used + len(candidate.text) > max_chars:
                continue
            if candidate.score <= 0 and not lead.text.rstrip().endswith(":"):
                continue
            chosen.append(candidate)
            used += len(candidate.text)
        seen: set[str] = set()
        ordered: list[tuple[str, Passage]] = []
        for candidate in sorted(chosen, key=lambda c: (c.passage_rank, c.position)):
            key = " ".join(candidate.text.lower().split())
            if key not in seen:
                seen.add(key)
                ordered.append((candidate.text, candidate.passage))
        return ordered


class AnswerService:
    """Retrieval, composition, grounding, abstention and escalation for one question."""

    def __init__(
        self,
        retriever: Retriever,
        *,
        composer: ExtractiveComposer | None = None,
        grounding: GroundingCheck | None = None,
        min_relevance: float = 0.45,
    ) -> None:
        self.retriever = retriever
        self.composer = composer or ExtractiveComposer()
        self.grounding = grounding or GroundingCheck()
        self.min_relevance = min_relevance

    def answer(
        self,
        question: str,
        *,
        audience: Audience,
        service_lines: Sequence[str] = (),
        channel: Channel = Channel.chat,
        top_k: int = 5,
    ) -> Answer:
        flag = triage(question)
        passages = self.retriever.search(
            question, audience=audience, service_lines=service_lines, top_k=top_k
        )
        relevant = [p for p in passages if p.relevance >= self.min_relevance]

        def abstain(reason: AbstainReason, route: str | None = None) -> Answer:
            return Answer(
                text="",
                sentences=[],
                passages=passages,
                grounded=False,
                support=0.0,
                abstained=True,
                abstain_reason=reason,
                escalate=flag.escalate,
                escalate_reason=flag.reason,
                route=route,
            )

        if not relevant:
            route = passages[0].service_line if passages else None
            return abstain(AbstainReason.no_relevant_content, route)

        cited: list[CitedSentence] = []
        for text, passage in self.composer.compose(question, relevant, channel):
            support = self.grounding.support(text, passage.text)
            if support.supported:
                cited.append(CitedSentence(text, passage, support.score))
        if not cited:
            return abstain(AbstainReason.low_support, relevant[0].service_line)
        clinical = any(s.passage.clinical for s in cited)
        stale = any(s.passage.stale for s in cited)
        notes = []
        if clinical:
            notes.append("Drawn from clinical guidance approved by a clinical reviewer.")
        if stale:
            notes.append("Some of this content is past its review date.")
        return Answer(
            text=" ".join(s.text for s in cited),
            sentences=cited,
            passages=relevant,
            grounded=True,
            support=min(s.support for s in cited),
            abstained=False,
            escalate=flag.escalate,
            escalate_reason=flag.reason,
            clinical=clinical,
            stale=stale,
            notes=notes,
        )
