"""Word and sentence splitting shared by the composer and the grounding check."""

import functools
import re

_WORD = re.compile(r"[a-z0-9]+(?:[.:'/-][a-z0-9]+)*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_NUMBER = re.compile(r"\d")

STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in
    into is it its me my of on or our should so than that the their them then there these they
    this to us was we were what when where which who why will with would you your yours am any
    about get go going got just may might much need please tell want""".split()  # noqa: SIM905
)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def stem(word: str) -> str:
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


@functools.lru_cache(maxsize=8192)
def content_terms(text: str) -> frozenset[str]:
    """Stemmed words minus stopwords. Cached: the composer and the grounding check ask
    for the same popular passages' sentences request after request."""
    return frozenset(stem(w) for w in words(text) if w not in STOPWORDS)


def is_number(term: str) -> bool:
    return bool(_NUMBER.search(term))


def sentences(text: str) -> list[str]:
    """Sentences, with every line of a list or table row kept as its own unit."""
    return list(_sentences(text))


@functools.lru_cache(maxsize=4096)
def _sentences(text: str) -> tuple[str, ...]:
    found: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            found.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return tuple(found)
