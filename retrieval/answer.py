"""Grounded answers: compose (extractive, or an LLM), cite every sentence, check every
sentence, abstain with a reason, escalate urgent or clinical questions."""

import asyncio
import functools
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from governance.models import Audience
from retrieval.escalation import EscalationRoutes, NextStep
from retrieval.generator import GeneratorError, LlmGenerator
from retrieval.grounding import GroundingCheck
from retrieval.hybrid import Passage, Retriever
from retrieval.text import content_terms, sentences
from retrieval.triage import SemanticTriage, Triage, Triager, triage


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
    # not English, and nothing answered it: the route is interpreter services
    needs_interpreter = "needs_interpreter"


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
    dropped: int = 0  # sentences the grounding check removed
    composer: str = "extractive"
    escalate_category: str | None = None
    language: str = "en"
    next_step: NextStep | None = None


# Abstentions that mean "nothing here answers it" (not "you may not see it").
_UNANSWERED = frozenset({AbstainReason.no_relevant_content, AbstainReason.low_support})

# One search `_why_nothing` asks for: the audience and service lines to look in.
Probe = tuple[Audience, tuple[str, ...]]

# Requests no health-system knowledge base answers, whatever it holds.
_OFF_DOMAIN = re.compile(
    r"\b(write (me )?(a |an )?(poem|song|story|essay|joke|code|program|script)"
    r"|tell me a joke|weather (forecast|today|tomorrow)|(stock|share) price|bitcoin|crypto"
    r"|who won|sports? scores?|lottery|recipe for|translate (this|to)|python|javascript"
    r"|capital of|president of|horoscope|movie|netflix|homework)\b",
    re.IGNORECASE,
)


def off_domain(question: str) -> bool:
    return bool(_OFF_DOMAIN.search(question))


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
        generator: LlmGenerator | None = None,
        semantic_triage: SemanticTriage | None = None,
        triager: Triager | None = None,
        routes: EscalationRoutes | None = None,
        min_relevance: float = 0.45,
    ) -> None:
        self.retriever = retriever
        self.composer = composer or ExtractiveComposer()
        self.grounding = grounding or GroundingCheck()
        self.generator = generator
        self.semantic_triage = semantic_triage
        self.triager = triager
        self.routes = routes
        self.min_relevance = min_relevance

    @property
    def waits(self) -> bool:
        """Whether answering may wait on something slow besides the question's embedding:
        an LLM endpoint or a reranker model. Without them an answer given its vector is a
        few milliseconds of CPU (a verbatim extractive sentence needs no model to check)."""
        return self.generator is not None or self.retriever.reranker is not None

    def answer(
        self,
        question: str,
        *,
        audience: Audience,
        service_lines: Sequence[str] = (),
        channel: Channel = Channel.chat,
        top_k: int = 5,
        vector: npt.NDArray[np.float32] | None = None,
        passages: list[Passage] | None = None,
        nothing: tuple[AbstainReason, str | None] | None = None,
        flag: Triage | None = None,
    ) -> Answer:
        """`vector`: the question's embedding, `passages`: what `retriever.search` returns
        for these arguments, and `nothing`: what `_why_nothing` says for them, when the
        caller already has them (see `answer_async`)."""
        if vector is None:
            vector = self.retriever.embedder.embed_query(question)
        if flag is None:
            flag = self.triage(question)
        if not flag.urgent and self.semantic_triage is not None:
            semantic = self.semantic_triage.check(vector)
            flag = replace(semantic, language=flag.language) if semantic.escalate else flag
        next_step = self._next_step(flag, audience)
        if passages is None:
            passages = self.retriever.search(
                question,
                audience=audience,
                service_lines=service_lines,
                top_k=top_k,
                query_vector=vector,
            )
        relevant = self._relevant(passages)

        def abstain(reason: AbstainReason, route: str | None = None, dropped: int = 0) -> Answer:
            step = next_step
            if flag.language != "en" and reason in _UNANSWERED:
                reason, route = AbstainReason.needs_interpreter, "interpreter"
                if step is None and self.routes is not None:
                    step = self.routes.next_step("interpreter", audience)
            return Answer(
                text="",
                sentences=[],
                passages=passages,  # what this audience may see; probes never land here
                grounded=False,
                support=0.0,
                abstained=True,
                abstain_reason=reason,
                escalate=flag.escalate,
                escalate_reason=flag.reason,
                route=route,
                dropped=dropped,
                escalate_category=flag.category,
                language=flag.language,
                next_step=step,
            )

        if off_domain(question) and not relevant:
            return abstain(AbstainReason.out_of_scope)
        if not relevant:
            if nothing is None:
                nothing = self._why_nothing(question, vector, audience, service_lines, passages)
            return abstain(*nothing)

        notes: list[str] = []
        composer = "extractive"
        drafted: list[tuple[str, Passage]] | None = None
        if self.generator is not None:
            try:
                drafted = self.generator.compose(question, relevant, BUDGETS[channel][0])
                composer = "llm"
            except GeneratorError:
                notes.append("The generator failed; this answer is extractive.")
        if drafted is None:
            drafted = self.composer.compose(question, relevant, channel)

        cited: list[CitedSentence] = []
        for text, passage in drafted:
            support = self.grounding.support(text, passage.text)
            if support.supported:
                cited.append(CitedSentence(text, passage, support.score))
        dropped = len(drafted) - len(cited)
        if not cited:
            return abstain(AbstainReason.low_support, relevant[0].service_line, dropped)
        clinical = any(s.passage.clinical for s in cited)
        stale = any(s.passage.stale for s in cited)
        if clinical:
            notes.append("Drawn from clinical guidance approved by a clinical reviewer.")
        if stale:
            notes.append("Some of this content is past its review date.")
        if dropped:
            notes.append(f"{dropped} sentence(s) removed: not supported by the cited passage.")
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
            dropped=dropped,
            composer=composer,
            escalate_category=flag.category,
            language=flag.language,
            next_step=next_step,
        )

    async def answer_async(
        self,
        question: str,
        vector: npt.NDArray[np.float32],
        *,
        audience: Audience,
        service_lines: Sequence[str] = (),
        channel: Channel = Channel.chat,
        top_k: int = 5,
    ) -> Answer:
        """`answer` on an event loop. When nothing waits (no generator, no reranker) the
        index queries, the abstention's probes included, run batched with the concurrent
        requests' (`Retriever.search_async`) and the rest is a few milliseconds of CPU on
        the loop; otherwise the whole answer runs in a worker thread."""
        answer = functools.partial(
            self.answer,
            question,
            audience=audience,
            service_lines=service_lines,
            channel=channel,
            top_k=top_k,
            vector=vector,
        )
        if self.waits:
            return await asyncio.to_thread(answer)
        # The triage model runs in a worker thread (onnxruntime and the e5 engine release
        # the GIL) while the index is queried: the event loop never waits for it.
        flagged = asyncio.ensure_future(asyncio.to_thread(self.triage, question))
        passages = await self.retriever.search_async(
            question, vector, audience=audience, service_lines=service_lines, top_k=top_k
        )
        nothing: tuple[AbstainReason, str | None] | None = None
        if not self._relevant(passages) and not off_domain(question):  # as `answer` decides
            steps = self._why_nothing_steps(audience, service_lines, passages)
            try:
                probe = next(steps)
                while True:
                    found = await self.retriever.search_async(
                        question, vector, audience=probe[0], service_lines=probe[1], top_k=3
                    )
                    probe = steps.send(found)
            except StopIteration as done:
                nothing = done.value
        return answer(passages=passages, nothing=nothing, flag=await flagged)

    def triage(self, question: str) -> Triage:
        """The trained triage with its pattern floor, or the patterns alone without it."""
        return self.triager.check(question) if self.triager is not None else triage(question)

    def _next_step(self, flag: Triage, audience: Audience) -> NextStep | None:
        if not flag.escalate or flag.category is None or self.routes is None:
            return None
        return self.routes.next_step(flag.category, audience)

    def _relevant(self, passages: Sequence[Passage]) -> list[Passage]:
        return [p for p in passages if p.relevance >= self.min_relevance]

    def _why_nothing(
        self,
        question: str,
        vector: npt.NDArray[np.float32],
        audience: Audience,
        service_lines: Sequence[str],
        passages: Sequence[Passage],
    ) -> tuple[AbstainReason, str | None]:
        """Nothing relevant was visible: say whether it exists elsewhere, never what it says.

        The probes (`_why_nothing_steps`) run one after the other as plain searches."""
        steps = self._why_nothing_steps(audience, service_lines, passages)
        try:
            probe = next(steps)
            while True:
                probe = steps.send(
                    self.retriever.search(
                        question,
                        audience=probe[0],
                        service_lines=probe[1],
                        top_k=3,
                        query_vector=vector,
                    )
                )
        except StopIteration as done:
            reason: tuple[AbstainReason, str | None] = done.value
            return reason

    def _why_nothing_steps(
        self, audience: Audience, service_lines: Sequence[str], passages: Sequence[Passage]
    ) -> Generator[Probe, list[Passage], tuple[AbstainReason, str | None]]:
        """Why nothing relevant was visible, as a generator: it yields each probe (the
        audience and service lines to search, top 3) and is sent what that search found,
        so the same decision runs with plain searches or batched async ones.

        - relevant content in other service lines than the request (or its key) allows:
          `out_of_scope`, routed to that service line;
        - relevant content only staff may read, asked as a patient: `restricted`;
        - otherwise `no_relevant_content`, routed to the nearest passage's service line.
        """
        if service_lines:
            wider = self._first_relevant((yield (audience, ())))
            if wider is not None:
                return AbstainReason.out_of_scope, wider.service_line
        if audience == Audience.patient:
            staff = self._first_relevant((yield (Audience.staff, tuple(service_lines))))
            if staff is not None and staff.audience == Audience.staff.value:
                return AbstainReason.restricted, staff.service_line
        return AbstainReason.no_relevant_content, passages[0].service_line if passages else None

    def _first_relevant(self, found: Sequence[Passage]) -> Passage | None:
        return next((p for p in found if p.relevance >= self.min_relevance), None)
