"""Input limits: body size (also streamed), question length, file size, files per ingest and
the page size of every listing, over HTTP and on the command line. Each refusal is a clear
4xx or CLI error naming what is at fault, and nothing stored changes."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from canon import errors
from canon.app import create_app
from canon.cli import app as cli
from canon.runtime import Runtime
from canon.settings import Settings
from governance import keys, paging
from governance.errors import InvalidInput
from governance.keys import Scope
from governance.models import Article, Rating
from ingest.pipeline import ingest
from tests.governance.factory import answer_citing, draft, feedback, live

runner = CliRunner()
Api = tuple[TestClient, dict[str, str]]


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    with Session(runtime.engine) as s:
        _key, secret = keys.create(
            s, name="everything", scopes=[x.value for x in Scope], created_by="test"
        )
        for n in range(3):  # three of everything a listing shows
            keys.create(s, name=f"bot-{n}", scopes=["answer"], created_by="test")
            v = live(s, runtime.sync, article_id=f"a{n}", owner="Raj", last_reviewed=None)
            feedback(s, answer_citing(s, [v]), Rating.outdated, f"note {n}")
        draft(s, article_id="a0", body="Call 555-0100.")
        draft(s, article_id="a0", body="Call 555-0101.")
    with TestClient(create_app(runtime)) as client:
        yield client, {"Authorization": f"Bearer {secret}"}


def _listings(spec: dict) -> list[str]:  # type: ignore[type-arg]
    """GET operations that return a list, or a report with a list of items."""
    found = []
    for path, item in spec["paths"].items():
        op = item.get("get")
        if not op or not path.startswith("/v1/"):
            continue
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        ref = schema.get("$ref", "").rsplit("/", 1)[-1]
        props = spec["components"]["schemas"].get(ref, {}).get("properties", {})
        if schema.get("type") == "array" or props.get("items", {}).get("type") == "array":
            found.append(path)
    return sorted(found)


def test_every_listing_takes_a_bounded_limit_and_an_offset(api: Api) -> None:
    client, h = api
    spec = client.get("/openapi.json").json()
    listings = _listings(spec)
    assert "/v1/articles" in listings and "/v1/freshness" in listings and len(listings) >= 7
    for path in listings:
        params = {p["name"]: p for p in spec["paths"][path]["get"].get("parameters", [])}
        assert params["limit"]["schema"]["maximum"] == paging.MAX_PAGE_SIZE, path
        if path != "/v1/audit":  # the audit trail pages by sequence number (`after`)
            assert "offset" in params, path
        url = path.replace("{article_id}", "a0")
        for bad, name in [
            ({"limit": paging.MAX_PAGE_SIZE + 1}, "limit"),
            ({"limit": 0}, "limit"),
            ({"offset": -1}, "offset"),
        ]:
            if name in params:
                error = client.get(url, params=bad, headers=h).json()["error"]
                assert error["code"] == "invalid_input" and error["message"].startswith(name), (
                    path,
                    bad,
                    error,
                )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/articles",
        "/v1/articles/a0/history",
        "/v1/review-queue",
        "/v1/freshness?include_fresh=true",
        "/v1/feedback",
        "/v1/keys",
    ],
)
def test_pages_split_a_listing_without_overlap(api: Api, path: str) -> None:
    client, h = api

    def rows(**params: int) -> list[str]:
        body = client.get(path, params=params, headers=h).json()
        items = body["items"] if isinstance(body, dict) else body
        return [json.dumps(i, sort_keys=True) for i in items]

    everything = rows(limit=paging.MAX_PAGE_SIZE)
    assert len(everything) >= 3, everything
    pages = [rows(limit=2, offset=o) for o in range(0, len(everything), 2)]
    assert all(len(p) <= 2 for p in pages)
    assert [r for p in pages for r in p] == everything
    assert rows(limit=2, offset=len(everything)) == []


def test_request_body_limits_hold_when_the_body_is_streamed(api: Api) -> None:
    client, h = api

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"question": "'
        for _ in range(40):
            yield b"a" * 1024
        yield b'"}'

    streamed = client.post(
        "/v1/answer", content=chunks(), headers=h | {"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["message"] == "request bodies are limited to 16384 bytes"
    for path in ("/v1/answer", "/v1/search"):
        at_limit = client.post(path, json={"question": "a" * 1000}, headers=h)
        over = client.post(path, json={"question": "a" * 1001}, headers=h)
        assert at_limit.status_code == 200 and over.status_code == 422
        assert over.json()["error"]["message"].startswith("question")


def test_an_ingest_over_the_file_count_is_refused_before_anything_is_read(
    tmp_path: Path, runtime: Runtime
) -> None:
    folder = tmp_path / "kb" / "billing"
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"a{n}.md").write_text(f"---\nid: a{n}\nowner: Ann\n---\n# A{n}\n\nText.\n")
    with pytest.raises(InvalidInput, match="3 files to ingest, more than the limit of 2"):
        ingest(runtime.engine, [tmp_path / "kb"], author="t", max_files=2)
    with Session(runtime.engine) as s:
        assert s.exec(select(Article)).all() == []
    assert len(ingest(runtime.engine, [tmp_path / "kb"], author="t", max_files=3).files) == 3


def test_cli_refuses_too_many_files_and_oversized_pages_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CANON_HOME", str(home))
    monkeypatch.delenv("CANON_DATABASE_URL", raising=False)
    folder = tmp_path / "kb" / "billing"
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"a{n}.md").write_text(f"---\nid: a{n}\nowner: Ann\n---\n# A{n}\n\nText.\n")

    refused = runner.invoke(cli, ["ingest", str(tmp_path / "kb"), "--max-files", "2"])
    assert isinstance(refused.exception, InvalidInput)
    assert "more than the limit of 2 (--max-files" in str(refused.exception)
    assert errors.lookup(errors.EXIT_CODE, refused.exception, 1) == 2
    assert not home.exists()  # refused before the database was even created
    monkeypatch.setenv("CANON_MAX_INGEST_FILES", "1")
    assert Settings().max_ingest_files == 1
    by_setting = runner.invoke(cli, ["ingest", str(tmp_path / "kb")])
    assert "more than the limit of 1" in str(by_setting.exception)
    monkeypatch.delenv("CANON_MAX_INGEST_FILES")
    assert runner.invoke(cli, ["ingest", str(tmp_path / "kb")]).exit_code == 0

    for command in (
        ["review", "list", "--status", "draft"],
        ["review", "queue"],
        ["history", "a0"],
        ["freshness", "--all"],
        ["audit", "list"],
        ["keys", "list"],
    ):
        too_big = runner.invoke(cli, [*command, "--limit", str(paging.MAX_PAGE_SIZE + 1)])
        assert too_big.exit_code == 2 and "'--limit'" in too_big.output, command
        if command != ["audit", "list"]:  # pages by sequence number: --after
            negative = runner.invoke(cli, [*command, "--offset", "-1"])
            assert negative.exit_code == 2 and "'--offset'" in negative.output, command
        one = runner.invoke(cli, [*command, "--limit", "1", "--json"])
        assert one.exit_code == 0, (command, one.output)
    drafts = runner.invoke(cli, ["review", "list", "--status", "draft", "--json", "--limit", "2"])
    second = runner.invoke(
        cli, ["review", "list", "--status", "draft", "--json", "--limit", "2", "--offset", "2"]
    )
    ids = [r["article_id"] for r in json.loads(drafts.stdout) + json.loads(second.stdout)]
    assert sorted(ids) == ["a0", "a1", "a2"]
