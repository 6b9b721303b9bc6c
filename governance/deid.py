"""De-identification of free text before it is stored: questions and feedback comments.

Rule-based and conservative: it scrubs the identifiers people type into a chat box and
replaces each with a typed placeholder: emails, SSNs, record / member / account / claim
numbers, phone numbers (with or without an area code), dates, street and PO-box
addresses, ZIP codes, other long numbers and letter-digit ids, and names: after a cue
("my name is", "my wife", "Dr.", "Name:", ...) or, without one, when a capitalised word
is a common given name (`deid_words.txt`; names that are also ordinary words only with
a surname after them). Measured in tests/governance/test_deid.py.
"""

import re
from functools import lru_cache
from pathlib import Path

_ID_CUES = (
    r"subscriber (?:id|number|no\.?|#)|insurance (?:id|number|no\.?)|policy (?:id|number|no\.?|#)"
    r"|claim(?: id| number| no\.?| #)?|account(?: id| number| no\.?| #)|acct\.?(?: #| no\.?)?"
    r"|group (?:id|number|no\.?|#)|id (?:number|no\.?|#)"
)
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("[EMAIL]", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("[SSN]", re.compile(r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b")),
    (
        r"\g<cue>[MRN]",
        re.compile(
            r"(?P<cue>\b(?:MRN|medical record(?: number| no\.?| #)?|record (?:number|no\.?|#)"
            r"|patient (?:id|number|#)|member (?:id|number|#))\s*(?:is|:|#)?\s*)"
            r"(?:[A-Z]+[-#]?)?\d[\w-]*",
            re.IGNORECASE,
        ),
    ),
    (
        r"\g<cue>[ID]",
        re.compile(
            rf"(?P<cue>\b(?:{_ID_CUES})\s*(?:is|:|#)?\s*)(?:[A-Z]+[-#]?)?\d[\w-]*",
            re.IGNORECASE,
        ),
    ),
    (
        r"\g<cue>[SSN]",
        re.compile(
            r"(?P<cue>\b(?:ssn|social security(?: number| no\.?| #)?|social"
            r"|last (?:four|4)(?: digits)?(?: of my (?:ssn|social(?: security number)?))?)"
            r"\b(?:\s+(?:is|are|number|:))*[\s:#]*)\d(?:[\d -]{2,9}\d)?\b",
            re.IGNORECASE,
        ),
    ),
    (
        "[PHONE]",
        re.compile(
            r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b"
            r"|\b\d{3}[.-]\d{4}\b(?!-)"
        ),
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
    ("[ADDRESS]", re.compile(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", re.IGNORECASE)),
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
    ("[ZIP]", re.compile(r"\b\d{5}-\d{4}\b|(?<=\b[A-Z]{2} )\d{5}\b")),
    # a letter-digit id (W123456789, HMO-7781234) or a long digit run (2026-448812-01)
    ("[ID]", re.compile(r"\b(?=[A-Z-]*\d)(?=\d*[A-Z])[A-Z\d]+(?:-[A-Z\d]+)*\b(?<=\w{6})")),
    ("[NUMBER]", re.compile(r"\b\d{6,}\b")),
]
_DASHED_DIGITS = re.compile(r"\b\d+(?:-\d+)+\b")  # [NUMBER] with 7 digits or more

# One capitalised word of a name: Ann, O'Brien, Smith-Jones; not the possessive 's.
_WORD = r"[A-Z](?:[a-z]+|(?=['’]))(?:['’-](?!s\b)[A-Z]?[a-z]+)*"
_NAME = _WORD + r"(?:\s+" + _WORD + r"){0,2}"
_KIN = (
    r"son|daughter|wife|husband|mother|mom|mum|father|dad|child|baby|partner|grandmother"
    r"|grandfather|grandma|grandpa|grandson|granddaughter|brother|sister|aunt|uncle|niece"
    r"|nephew|fianc[eé]e?|boyfriend|girlfriend|caregiver|friend|neighbou?r|roommate"
)
_NAME_CUES = re.compile(
    r"(?P<cue>\b(?i:name is|my name's|name's|name\s*:|patient\s*:|this is|it's|its|it is|i am|i'm"
    r"|regards,?|thanks,|thank you,|sincerely,?|cheers,"
    r"|call me|named|ring|contact|speak (?:to|with)|ask for|tell|guardian of"
    rf"|my (?:{_KIN})(?:(?:'s name)? is)?,?"
    r"|(?:patient|for|by|with|about)\s+(?=(?:mr|mrs|ms|miss|dr)\b)"
    r"|mr\.?|mrs\.?|ms\.?|miss|dr\.?|patient)\s+)(?!(?:Mr|Mrs|Ms|Miss|Dr)\b)(?P<name>"
    + _NAME
    + r")",
)
# Capitalised words after a cue that are not names ("I'm Pregnant", "this is Billing").
_NOT_NAMES = frozenset(
    {
        *("pregnant", "sick", "worried", "calling", "having", "feeling", "trying", "looking"),
        *("going", "not", "a", "an", "the", "so", "very", "still", "just", "new", "here"),
        *("there", "allergic", "diabetic", "unable", "billing", "scheduling", "pharmacy"),
        *("radiology", "imaging", "oncology", "urgent", "emergency", "northbridge", "my"),
        *("your", "our", "is", "are", "what", "when", "where", "how", "why", "who", "can"),
        *("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    }
)
_CAPITALISED_RUN = re.compile(_WORD + r"(?:[ \t]+" + _WORD + r")*")


@lru_cache(maxsize=1)
def word_lists() -> dict[str, frozenset[str]]:
    """The sections of `deid_words.txt`: given names, ambiguous ones, not surnames."""
    lists: dict[str, set[str]] = {}
    section = ""
    for line in Path(__file__).with_name("deid_words.txt").read_text("utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[] ")
            lists[section] = set()
        elif line and not line.startswith("#"):
            lists[section].update(line.split())
    return {name: frozenset(words) for name, words in lists.items()}


# "Kwame Mensah here": a full name that introduces the writer.
_NAME_HERE = re.compile(r"\b(?P<name>" + _WORD + r"(?:\s+" + _WORD + r"){1,2})(?= here\b)")


def _scrub_cued_names(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        first = name.split()[0]
        if first.lower() in _NOT_NAMES or not name[0].isupper():
            return match.group(0)
        return match.group("cue") + "[NAME]"

    return _NAME_HERE.sub("[NAME]", _NAME_CUES.sub(replace, text))


def _scrub_given_names(text: str) -> str:
    """A common given name and the capitalised words after it (a surname) become [NAME]."""
    lists = word_lists()
    ambiguous, not_surnames = lists["ambiguous"], lists["not surnames"]
    names = lists["given names"] | ambiguous

    def replace(match: re.Match[str]) -> str:
        words = match.group(0).split()
        for i, word in enumerate(words):
            if word not in names:
                continue
            rest = []
            for after in words[i + 1 : i + 3]:
                if after in not_surnames:
                    break
                rest.append(after)
            if word in ambiguous and not rest:
                continue
            return " ".join([*words[:i], "[NAME]", *words[i + 1 + len(rest) :]])
        return match.group(0)

    return _CAPITALISED_RUN.sub(replace, text)


def deidentify(text: str) -> str:
    """The text with identifiers replaced by `[EMAIL]`, `[PHONE]`, `[DATE]`, `[NAME]`, ..."""
    for placeholder, pattern in _RULES:
        text = pattern.sub(placeholder, text)
    text = _DASHED_DIGITS.sub(
        lambda m: "[NUMBER]" if sum(c.isdigit() for c in m.group(0)) >= 7 else m.group(0), text
    )
    return _scrub_given_names(_scrub_cued_names(text))
