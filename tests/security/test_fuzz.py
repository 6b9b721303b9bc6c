"""Schemathesis against the generated OpenAPI document, in process (ASGI, no network).

Every operation gets schema-valid and schema-invalid requests, each sent with a key
holding every scope and again with no key: no response may be a 5xx, and every status
code, content type, header and body must be the ones the document declares.
(Schemathesis' own pytest plugin does not run under pytest 9, so the operations are
parametrised here and each one's strategy is driven by Hypothesis directly.)
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlmodel import Session

from canon.app import create_app
from canon.runtime import Runtime
from canon.settings import Settings
from governance import keys
from governance.keys import Scope

EXAMPLES = int(os.environ.get("CANON_FUZZ_EXAMPLES", "10"))
# The document as the app generates it; building it touches no database or index.
SPEC = create_app(Runtime(Settings(home=Path("unused")))).openapi()
# Refusals the schema cannot express: a valid-looking body whose Markdown has no text
# to index is a 422 naming the article (found by this test; the message says why).
SEMANTIC_422 = {("POST", "/v1/articles/{article_id}/versions")}


def _can_be_invalid(op: dict[str, Any]) -> bool:
    """Whether some request to the operation breaks its schema (a bare string path can't)."""
    if op.get("requestBody"):
        return True
    return any(
        p["in"] != "path" or set(p["schema"]) - {"type", "title", "description"}
        for p in op.get("parameters", [])
    )


CASES = sorted(
    (method.upper(), path, mode)
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if method in {"get", "post", "put", "patch", "delete"}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or _can_be_invalid(op)
)


# The key goes in by hand (with every scope, then none), so the generator leaves the
# security scheme alone; invalid input may be refused by any documented 4xx, 413 included.
# Unknown query parameters are ignored, as FastAPI does, so none are generated.
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "with-security-parameters": False,
            "allow-extra-parameters": False,
            "allow-x00": False,  # NUL is refused up front (422): test_input_guards.py
        },
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "409", "413", "422", "428"]
            },
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "428"]
            },
        },
    }
)


@pytest.fixture(scope="module")
def fuzz_app(writable_sample: Runtime) -> Iterator[tuple[Any, str]]:
    with Session(writable_sample.engine) as s:
        _key, secret = keys.create(
            s, name="fuzzer", scopes=[scope.value for scope in Scope], created_by="test"
        )
    app = create_app(writable_sample)
    with TestClient(app):  # runs the lifespan: the app stays wired while we fuzz it
        yield app, secret


@pytest.fixture(scope="module")
def api_schema(fuzz_app: tuple[Any, str]) -> Any:
    app, _secret = fuzz_app
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_api_matches_its_schema_and_never_fails(
    api_schema: Any, fuzz_app: tuple[Any, str], method: str, path: str, mode: GenerationMode
) -> None:
    _app, secret = fuzz_app
    operation = api_schema[path][method]
    skip = [positive_data_acceptance] if (method, path) in SEMANTIC_422 else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {secret}"}, excluded_checks=skip)
        case.call_and_validate(headers={"Authorization": ""})

    exercise()
