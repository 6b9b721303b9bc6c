"""HTTP surface for the orchestrator and agents: search, answer, the answer log, feedback."""

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from governance import answer_log
from governance.answer_log import CitedVersion
from governance.api import PrincipalDep, SessionDep, _bearer
from governance.errors import NotFound
from governance.keys import KeyCache, Principal, Scope
from governance.models import Audience, Rating
from retrieval.answer import AbstainReason, Answer, AnswerService, Channel
from retrieval.batching import TickBatcher
from retrieval.hybrid import ARTICLE_DEPTH, ARTICLE_OVERREAD, Passage, one_per_article

MAX_QUESTION_CHARS = 1000
READ_ANY_LOG = (Scope.review, Scope.clinical_review, Scope.admin)


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"question": "prior authorization submission steps", "audience": "staff"},
                {"question": "When is the billing office open?", "service_lines": ["billing"]},
            ]
        }
    )

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description=f"at most {MAX_QUESTION_CHARS} characters",
    )
    audience: Audience = Field(
        default=Audience.patient, description="a patient-pinned key may only ask as patient"
    )
    service_lines: list[str] = Field(
        default_factory=list, max_length=20, description="limit to these (within the key's pins)"
    )
    top_k: int = Field(default=5, ge=1, le=20)
    group_by: Literal["passage", "article"] = Field(
        default="passage",
        description="'article': one passage per article (its best), up to top_k articles",
    )


class AnswerRequest(SearchRequest):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "question": "Is the billing office open on Saturday?",
                    "audience": "patient",
                    "channel": "chat",
                },
                {"question": "What are the MRI prep instructions?", "channel": "voice"},
            ]
        }
    )

    channel: Channel = Field(default=Channel.chat, description="voice and sms answers are shorter")


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


EscalateCategory = Literal["emergency", "crisis", "urgent_symptom", "clinical_judgment"]


class NextStepPublic(BaseModel):
    route: str = Field(
        description="emergency, crisis, urgent_symptom, clinical_judgment or interpreter"
    )
    text: str
    article_id: str
    version: int
    section: str


class AnswerResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "answer_id": "6f1c2a9e-8d1b-4a7e-9a53-0c1f4f0e2b11",
                    "answer": "Saturday 9:00 a.m. to 1:00 p.m.",
                    "sentences": [
                        {"text": "Saturday 9:00 a.m. to 1:00 p.m.", "citation": 0, "support": 1.0}
                    ],
                    "citations": [
                        {
                            "article_id": "billing-office-hours",
                            "version": 2,
                            "title": "Billing Customer Service Hours and Phone Numbers",
                            "section": "Phone Hours",
                            "snippet": "Saturday 9:00 a.m. to 1:00 p.m.",
                            "score": 0.71,
                            "service_line": "billing",
                            "clinical": False,
                            "stale": False,
                        }
                    ],
                    "grounded": True,
                    "support": 1.0,
                    "abstained": False,
                    "abstain_reason": None,
                    "route": None,
                    "escalate": False,
                    "escalate_reason": None,
                    "clinical": False,
                    "stale": False,
                    "notes": [],
                },
                {
                    "answer_id": "0b7d6c1a-3f55-4c0e-8c8e-51f1e7f0c9a2",
                    "answer": "",
                    "sentences": [],
                    "citations": [],
                    "grounded": False,
                    "support": 0.0,
                    "abstained": True,
                    "abstain_reason": "no_relevant_content",
                    "route": "cardiology",
                    "escalate": True,
                    "escalate_reason": "urgent: possible cardiac emergency; direct the patient "
                    "to emergency care or a nurse",
                    "clinical": False,
                    "stale": False,
                    "notes": [],
                },
            ]
        }
    )

    answer_id: str | None = Field(
        default=None, description="id in the answer log (GET /v1/answers/{id}, POST /v1/feedback)"
    )
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
    escalate_category: EscalateCategory | None = Field(
        default=None,
        description="why a human is needed: emergency, crisis (self-harm, suicide, abuse), "
        "urgent_symptom, or clinical_judgment (medication changes, diagnosis, dosing)",
    )
    next_step: NextStepPublic | None = Field(
        default=None,
        description="what to tell the patient now, from the published escalation-routes "
        "article (or interpreter services for a question in another language)",
    )
    language: str = Field(default="en", description="the language detected: en or es")
    clinical: bool
    stale: bool
    notes: list[str]


class LoggedCitation(BaseModel):
    article_id: str
    version: int
    section: str


class FeedbackPublic(BaseModel):
    id: int
    answer_id: str
    rating: Rating
    comment: str | None
    by: str
    at: datetime
    versions: list[LoggedCitation] = Field(
        default_factory=list, description="the versions the judged answer cited"
    )


class LoggedAnswerPublic(BaseModel):
    id: str
    at: datetime
    channel: str
    audience: Audience
    question: str = Field(description="the question as stored: de-identified")
    answer: str
    abstained: bool
    abstain_reason: str | None
    escalate: bool
    grounded: bool
    support: float
    citations: list[LoggedCitation]
    feedback: list[FeedbackPublic]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "answer_id": "6f1c2a9e-8d1b-4a7e-9a53-0c1f4f0e2b11",
                    "rating": "outdated",
                    "comment": "The Saturday hours changed last month.",
                }
            ]
        }
    )

    answer_id: str = Field(min_length=1, max_length=36)
    rating: Rating
    comment: str | None = Field(
        default=None, max_length=answer_log.MAX_COMMENT_CHARS, description="de-identified"
    )


async def answer_service(request: Request) -> AnswerService:
    service: AnswerService = request.app.state.answers
    return service


AnswerServiceDep = Annotated[AnswerService, Depends(answer_service)]


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The calling key, from the in-process cache (a revoked key still fails at once).

    The cache entry is trusted while the audit sequence is the one it was read at. That
    sequence is read once for all the requests waiting on this event loop, after they
    arrived: a key revoked before a request came in fails it, as with a read per request.
    """
    cache: KeyCache = request.app.state.keys
    presented = credentials.credentials if credentials else None
    state = request.app.state
    sequences: TickBatcher[None, int] | None = getattr(state, "key_sequence", None)
    if sequences is None:
        sequences = state.key_sequence = TickBatcher(
            lambda waiting: [cache.sequence()] * len(waiting)
        )
    principal = cache.cached(presented, await sequences.submit(None))
    return principal if principal is not None else cache.authenticate(presented)


CallerDep = Annotated[Principal, Depends(caller)]

router = APIRouter(prefix="/v1", tags=["answers"])

# /v1/search and /v1/answer are async: on the event loop they await the question's
# embedding from the micro-batcher, then the hybrid query (batched with the concurrent
# requests' queries), then do a few milliseconds of CPU (live check, composer), with no
# threadpool hop and no 32 threads contending for the GIL. An LLM generator or a
# reranker moves the answer itself to a worker thread.


@router.post("/search", response_model=SearchResponse)
async def search(body: SearchRequest, answers: AnswerServiceDep, who: CallerDep) -> SearchResponse:
    """Ranked passages from published content the audience may see."""
    who.require(Scope.answer)
    audience = who.audience(body.audience)
    service_lines = who.service_lines(body.service_lines)
    retriever = answers.retriever
    vector = await retriever.embedder.embed_query_async(body.question)
    grouped = body.group_by == "article"
    # one passage per article: read deeper, since an article's chunks crowd the top
    depth = min(ARTICLE_DEPTH, body.top_k * ARTICLE_OVERREAD) if grouped else body.top_k
    if retriever.reranker is None:
        passages = await retriever.search_async(
            body.question,
            vector,
            audience=audience,
            service_lines=service_lines,
            top_k=depth,
        )
    else:
        passages = await asyncio.to_thread(
            retriever.search,
            body.question,
            audience=audience,
            service_lines=service_lines,
            top_k=depth,
            query_vector=vector,
        )
    if grouped:
        passages = one_per_article(passages, body.top_k)
    return SearchResponse(passages=[Citation.of(p) for p in passages])


@router.post("/answer", response_model=AnswerResponse)
async def answer(
    body: AnswerRequest, answers: AnswerServiceDep, who: CallerDep, request: Request
) -> AnswerResponse:
    """A grounded answer with a citation on every sentence, or an abstention with a reason.

    Every answer is logged with its question de-identified and the exact versions it
    cited; `answer_id` finds it again and takes feedback.
    """
    who.require(Scope.answer)
    audience = who.audience(body.audience)
    service_lines = who.service_lines(body.service_lines)
    vector = await answers.retriever.embedder.embed_query_async(body.question)
    result = await answers.answer_async(  # in a worker thread if an LLM or reranker waits
        body.question,
        vector,
        audience=audience,
        service_lines=service_lines,
        channel=body.channel,
        top_k=body.top_k,
    )
    response = _response(result)
    writer: answer_log.Writer | None = request.app.state.answer_log
    if writer is not None:
        response.answer_id = writer.submit(
            answer_log.Entry(
                id=answer_log.new_id(),
                question=body.question,
                answer=result.text,
                channel=body.channel.value,
                audience=audience,
                key_name=who.name,
                abstained=result.abstained,
                abstain_reason=result.abstain_reason.value if result.abstain_reason else None,
                escalate=result.escalate,
                grounded=result.grounded,
                support=response.support,
                citations=tuple(
                    CitedVersion(c.article_id, v, c.version, c.section)
                    for c, v in zip(response.citations, _version_ids(result), strict=True)
                ),
            )
        )
    return response


def _version_ids(result: Answer) -> list[int]:
    seen: dict[str, int] = {}
    for sentence in result.sentences:
        seen.setdefault(sentence.passage.point_id, sentence.passage.version_id)
    return list(seen.values())


def _response(result: Answer) -> AnswerResponse:
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
        escalate_category=result.escalate_category,
        next_step=None
        if result.next_step is None
        else NextStepPublic(
            route=result.next_step.route,
            text=result.next_step.text,
            article_id=result.next_step.article_id,
            version=result.next_step.version,
            section=result.next_step.section,
        ),
        language=result.language,
        clinical=result.clinical,
        stale=result.stale,
        notes=result.notes,
    )


def _flush(request: Request) -> None:
    """Answers are logged in the background: a reader first waits for those already given."""
    writer: answer_log.Writer | None = request.app.state.answer_log
    if writer is not None:
        writer.flush()


def _readable(who: Principal, logged: answer_log.LoggedAnswer) -> None:
    """Reviewers and admins read any logged answer; an answering key only its own."""
    if who.scopes.intersection(READ_ANY_LOG):
        return
    who.require(Scope.answer, *READ_ANY_LOG)
    if logged.log.key_name != who.name:
        raise NotFound(f"no answer with id {logged.log.id!r}")


def _versions(logged: answer_log.LoggedAnswer) -> list[LoggedCitation]:
    return [
        LoggedCitation(article_id=c.article_id, version=c.version, section=c.section)
        for c in logged.citations
    ]


def _feedback_public(row: Any, versions: list[LoggedCitation]) -> FeedbackPublic:
    return FeedbackPublic(
        id=row.id,
        answer_id=row.answer_id,
        rating=row.rating,
        comment=row.comment,
        by=row.by,
        at=row.at,
        versions=versions,
    )


@router.get("/answers/{answer_id}", response_model=LoggedAnswerPublic)
def get_answer(
    answer_id: str, session: SessionDep, who: PrincipalDep, request: Request
) -> LoggedAnswerPublic:
    """A logged answer: the de-identified question, the answer, the exact versions cited."""
    who.require(Scope.answer, *READ_ANY_LOG)
    _flush(request)
    logged = answer_log.fetch(session, answer_id)
    _readable(who, logged)
    versions = _versions(logged)
    log = logged.log
    return LoggedAnswerPublic(
        id=log.id,
        at=log.at,
        channel=log.channel,
        audience=log.audience,
        question=log.question_deid,
        answer=log.answer,
        abstained=log.abstained,
        abstain_reason=log.abstain_reason,
        escalate=log.escalate,
        grounded=log.grounded,
        support=log.support,
        citations=versions,
        feedback=[_feedback_public(f, versions) for f in logged.feedback],
    )


@router.post("/feedback", response_model=FeedbackPublic, status_code=201)
def feedback(
    body: FeedbackRequest, session: SessionDep, who: PrincipalDep, request: Request
) -> FeedbackPublic:
    """A judgment on a logged answer, linked to the versions it cited (owners see it in review)."""
    who.require(Scope.answer, *READ_ANY_LOG)
    _flush(request)
    logged = answer_log.fetch(session, body.answer_id)
    _readable(who, logged)
    row = answer_log.add_feedback(
        session, body.answer_id, rating=body.rating, comment=body.comment, by=who.name
    )
    return _feedback_public(row, _versions(logged))
