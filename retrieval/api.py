"""HTTP surface for the orchestrator and agents: /v1/search and /v1/answer."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from governance.api import PrincipalDep
from governance.keys import Scope
from governance.models import Audience
from retrieval.answer import AbstainReason, AnswerService, Channel
from retrieval.hybrid import Passage

MAX_QUESTION_CHARS = 1000


class SearchRequest(BaseModel):
    question: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, examples=["When is billing open?"]
    )
    audience: Audience = Audience.patient
    service_lines: list[str] = Field(default_factory=list, max_length=20)
    top_k: int = Field(default=5, ge=1, le=20)


class AnswerRequest(SearchRequest):
    channel: Channel = Channel.chat


class Citation(BaseModel):
    article_id: str
    version: int
    title: str
    section: str
    snippet: str
    score: float
    service_line: str
    clinical: bool
    stale: bool

    @classmethod
    def of(cls, passage: Passage) -> "Citation":
        return cls(
            article_id=passage.article_id,
            version=passage.version,
            title=passage.title,
            section=passage.section,
            snippet=passage.text,
            score=round(passage.relevance, 4),
            service_line=passage.service_line,
            clinical=passage.clinical,
            stale=passage.stale,
        )


class SearchResponse(BaseModel):
    passages: list[Citation]


class AnswerSentence(BaseModel):
    text: str
    citation: int = Field(description="index into citations")
    support: float


class AnswerResponse(BaseModel):
    answer: str
    sentences: list[AnswerSentence]
    citations: list[Citation]
    grounded: bool
    support: float
    abstained: bool
    abstain_reason: AbstainReason | None = None
    route: str | None = Field(default=None, description="service line to hand the question to")
    escalate: bool
    escalate_reason: str | None = None
    clinical: bool
    stale: bool
    notes: list[str]


def answer_service(request: Request) -> AnswerService:
    service: AnswerService = request.app.state.answers
    return service


AnswerServiceDep = Annotated[AnswerService, Depends(answer_service)]

router = APIRouter(prefix="/v1", tags=["answers"])


@router.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, answers: AnswerServiceDep, who: PrincipalDep) -> SearchResponse:
    """Ranked passages from published content the audience may see."""
    who.require(Scope.answer)
    passages = answers.retriever.search(
        body.question,
        audience=who.audience(body.audience),
        service_lines=who.service_lines(body.service_lines),
        top_k=body.top_k,
    )
    return SearchResponse(passages=[Citation.of(p) for p in passages])


@router.post("/answer", response_model=AnswerResponse)
def answer(body: AnswerRequest, answers: AnswerServiceDep, who: PrincipalDep) -> AnswerResponse:
    """A grounded answer with a citation on every sentence, or an abstention with a reason."""
    who.require(Scope.answer)
    result = answers.answer(
        body.question,
        audience=who.audience(body.audience),
        service_lines=who.service_lines(body.service_lines),
        channel=body.channel,
        top_k=body.top_k,
    )
    citations: list[Citation] = []
    index: dict[str, int] = {}
    sentences: list[AnswerSentence] = []
    for sentence in result.sentences:
        key = sentence.passage.point_id
        if key not in index:
            index[key] = len(citations)
            citations.append(Citation.of(sentence.passage))
        sentences.append(
            AnswerSentence(
                text=sentence.text, citation=index[key], support=round(sentence.support, 4)
            )
        )
    return AnswerResponse(
        answer=result.text,
        sentences=sentences,
        citations=citations,
        grounded=result.grounded,
        support=round(result.support, 4),
        abstained=result.abstained,
        abstain_reason=result.abstain_reason,
        route=result.route,
        escalate=result.escalate,
        escalate_reason=result.escalate_reason,
        clinical=result.clinical,
        stale=result.stale,
        notes=result.notes,
    )
