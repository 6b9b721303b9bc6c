"""Keep `unstructured` offline: no telemetry, no run-time model download.

unstructured downloads spaCy's en_core_web_sm on first use to tell narrative text
from other text. A hospital behind a firewall cannot do that, and Canon does not
need it: headings come from the markup. We hand it a local pipeline instead: the
installed en_core_web_sm if a deployment provides it, else a blank English
pipeline with a rule-based sentencizer.
"""

import os
from functools import lru_cache
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")


@lru_cache(maxsize=1)
def local_nlp() -> Any:
    import spacy

    try:
        return spacy.load("en_core_web_sm", exclude=["ner", "lemmatizer", "attribute_ruler"])
    except OSError:
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp


def install() -> None:
    import unstructured.nlp.tokenize as tokenize

    tokenize._get_nlp = local_nlp


install()
