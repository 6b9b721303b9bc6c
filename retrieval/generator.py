"""Optional LLM generator through any OpenAI-compatible `/chat/completions` endpoint.

The prompt numbers the passages and demands a bracketed citation after every
sentence. The reply is parsed back into (sentence, passage) pairs; sentences
without a valid citation are dropped here, and the grounding check then judges
every remaining sentence against the passage it cites. A reply that cannot be
used (transport error, non-JSON, no content) raises `GeneratorError`, which the
answer service turns into an extractive answer, never a crash.
"""

import re
from collections.abc import Sequence

import httpx

from retrieval.hybrid import Passage
from retrieval.text import sentences

SYSTEM_PROMPT = """You answer questions for a health system using ONLY the numbered passages.
Rules:
- Every sentence you write must end with the number of the passage that states it, in
  brackets, like [2]. Use only numbers of passages shown.
- Copy facts (times, numbers, phone numbers, names of places) exactly as written.
- Do not add advice, facts or reassurance that the passages do not state.
- Write at most {max_sentences} short sentences.
- If the passages do not answer the question, reply exactly: INSUFFICIENT"""

_CITE = re.compile(r"\[(\d{1,2})\]")
_TRAILING_CITES = re.compile(r"([.!?])\s*((?:\[\d{1,2}\]\s*)+)")
INSUFFICIENT = "INSUFFICIENT"


class GeneratorError(Exception):
    """The endpoint failed or replied with something that is not a usable answer."""


class LlmGenerator:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 20.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)

    def prompt(
        self, question: str, passages: Sequence[Passage], max_sentences: int
    ) -> list[dict[str, str]]:
        numbered = "\n\n".join(
            f"[{i}] {p.title} — {p.section}\n{p.text}" for i, p in enumerate(passages, start=1)
        )
        return [
            {"role": "system", "content": SYSTEM_PROMPT.format(max_sentences=max_sentences)},
            {"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion: {question}"},
        ]

    def complete(self, messages: list[dict[str, str]]) -> str:
        try:
            response = self._client.post(
                f"{self.base_url}/chat/completions",
                json={"model": self.model, "messages": messages, "temperature": 0},
            )
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise GeneratorError(f"LLM endpoint: {type(exc).__name__}: {exc}") from exc
        if not isinstance(content, str):
            raise GeneratorError("LLM endpoint: the reply has no text content")
        return content

    def compose(
        self, question: str, passages: Sequence[Passage], max_sentences: int
    ) -> list[tuple[str, Passage]]:
        """Cited sentences from the model's reply; [] when it says the passages do not answer."""
        if not passages:
            return []
        reply = self.complete(self.prompt(question, passages, max_sentences)).strip()
        if reply.upper().startswith(INSUFFICIENT):
            return []
        return parse_cited(reply, passages)[:max_sentences]


def parse_cited(reply: str, passages: Sequence[Passage]) -> list[tuple[str, Passage]]:
    """Split a reply into sentences; keep those citing a shown passage, markers removed.

    A sentence citing several passages is attributed to the first one cited; the
    grounding check decides whether that passage supports it.
    """
    # "... 5 p.m. [2] Next" -> "... 5 p.m [2]. Next": keep each marker with its sentence.
    reply = _TRAILING_CITES.sub(r" \2\1 ", reply)
    cited: list[tuple[str, Passage]] = []
    for raw in sentences(reply):
        numbers = [int(n) for n in _CITE.findall(raw)]
        valid = [n for n in numbers if 1 <= n <= len(passages)]
        text = " ".join(_CITE.sub("", raw).split())
        text = re.sub(r"\s+([.,;:!?])", r"\1", text)
        if valid and text:
            cited.append((text, passages[valid[0] - 1]))
    return cited
