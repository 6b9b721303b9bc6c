"""De-identification of free text before it is stored: questions and feedback comments.

Rule-based and conservative: it scrubs the identifiers people type into a chat box
(names introduced as names, phone numbers, dates, MRNs and other long numbers,
emails, street addresses, SSNs) and replaces each with a typed placeholder.
"""

import re

_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("[EMAIL]", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("[SSN]", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    (
        "[MRN]",
        re.compile(
            r"\b(?:MRN|medical record(?: number| no\.?| #)?|record (?:number|no\.?|#)"
            r"|patient (?:id|number|#)|member (?:id|number|#))\s*(?:is|:|#)?\s*[A-Z]*\d[\w-]*",
            re.IGNORECASE,
        ),
    ),
    (
        "[PHONE]",
        re.compile(r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b"),
    ),
    (
        "[DATE]",
        re.compile(
            r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b"
            r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}"
            r"(?:st|nd|rd|th)?,?\s+\d{4}\b"
            r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)"
            r"[a-z]*\.?,?\s+\d{4}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "[ADDRESS]",
        re.compile(
            r"\b\d{1,6}\s+(?:[A-Z0-9][\w'.-]*\s+){1,4}"
            r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way"
            r"|place|pl|terrace|circle|parkway|pkwy|highway|hwy)\b\.?"
            r"(?:,?\s+(?:apt|apartment|unit|suite|ste|#)\.?\s*\w+)?",
            re.IGNORECASE,
        ),
    ),
    ("[ZIP]", re.compile(r"\b\d{5}(?:-\d{4})\b")),
    ("[NUMBER]", re.compile(r"\b\d{6,}\b")),
]

_NAME = r"[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){0,2}"
_NAME_CUES = re.compile(
    r"(?P<cue>\b(?i:my name is|name's|this is|i am|i'm|call me|my (?:son|daughter|wife|husband"
    r"|mother|mom|father|dad|child|baby|partner|mum|grandmother|grandfather)(?:(?:'s name)? is)?"
    r"|(?:patient|for|by|with|about)\s+(?=(?:mr|mrs|ms|miss|dr)\b)"
    r"|mr\.?|mrs\.?|ms\.?|miss|dr\.?|patient)\s+)(?P<name>" + _NAME + r")",
)
# Capitalised words after "i am" / "i'm" that are states, not names.
_NOT_NAMES = frozenset(
    {
        *("pregnant", "sick", "worried", "calling", "having", "feeling", "trying", "looking"),
        *("going", "not", "a", "an", "the", "so", "very", "still", "just", "new", "here"),
        *("there", "allergic", "diabetic", "unable"),
    }
)


def _scrub_names(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        first = name.split()[0].lower()
        if first in _NOT_NAMES or not name[0].isupper():
            return match.group(0)
        return match.group("cue") + "[NAME]"

    return _NAME_CUES.sub(replace, text)


def deidentify(text: str) -> str:
    """The text with identifiers replaced by `[EMAIL]`, `[PHONE]`, `[DATE]`, `[NAME]`, ..."""
    for placeholder, pattern in _RULES:
        text = pattern.sub(placeholder, text)
    return _scrub_names(text)
