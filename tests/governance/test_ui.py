"""The owners' UI over HTTP: sign-in, refusals shown on the page with the right status, and
markup that labels every control."""

import re
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from canon.app import create_app
from canon.runtime import Runtime
from governance import keys, service
from governance.models import Rating, Status
from tests.governance.factory import answer_citing, draft, feedback, live


@pytest.fixture
def ui(runtime: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    made: dict[str, str] = {}
    with Session(runtime.engine) as s:
        for name, scopes in [("rob", ["review"]), ("alice", ["author"]), ("bot", ["answer"])]:
            _k, made[name] = keys.create(s, name=name, scopes=scopes, created_by="setup")
        v1 = live(s, runtime.sync, body="Open 8 to 5.")
        feedback(s, answer_citing(s, [v1]), Rating.wrong, "It is 7:30 now")
        draft(s, body="Open 7:30 to 6.", author="rob")  # rob wrote v2
        draft(s, article_id="parking", body="Garage B.", service_line="visitors")
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        yield client, made


def sign_in(client: TestClient, key: str) -> None:
    response = client.post("/ui/sign-in", data={"key": key})
    assert response.status_code == 303 and response.headers["location"] == "/ui/queue"


def test_pages_need_a_signed_in_content_role(ui: tuple[TestClient, dict[str, str]]) -> None:
    client, made = ui
    for path in ("/ui/queue", "/ui/freshness", "/ui/feedback", "/ui/articles/parking"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/ui/sign-in"
    refused = client.post("/ui/sign-in", data={"key": made["bot"]})
    assert refused.status_code == 401 and "no content role" in refused.text
    assert client.post("/ui/sign-in", data={"key": "nonsense"}).status_code == 401
    sign_in(client, made["rob"])
    assert client.get("/ui/queue").status_code == 200
    client.post("/ui/sign-out")
    assert client.get("/ui/queue").status_code == 303


def test_refusals_are_shown_on_the_page(ui: tuple[TestClient, dict[str, str]]) -> None:
    client, made = ui
    sign_in(client, made["rob"])
    own = client.get("/ui/articles/billing-hours?v=2")
    assert own.status_code == 200 and "You wrote this version" in own.text
    assert "Approve v2" not in own.text
    assert "It is 7:30 now" in own.text  # reader feedback on the published version
    forced = client.post("/ui/articles/billing-hours/versions/2/approve", data={"revision": "2"})
    assert forced.status_code == 403 and "cannot approve" in forced.text

    page = client.get("/ui/articles/parking")
    revision = re.search(r'name="revision" value="(\d+)"', page.text)
    assert revision is not None
    empty = client.post(
        "/ui/articles/parking/versions/1/reject", data={"revision": revision[1], "comment": " "}
    )
    assert empty.status_code == 422 and "needs a comment" in empty.text
    stale = client.post("/ui/articles/parking/versions/1/approve", data={"revision": "1"})
    assert stale.status_code == 409 and "revision" in stale.text
    done = client.post(
        "/ui/articles/parking/versions/1/reject",
        data={"revision": revision[1], "comment": "Which floor?"},
    )
    assert done.status_code == 303
    after = client.get(done.headers["location"])
    assert "Sent v1 back to its author." in after.text and "Which floor?" in after.text
    assert client.get("/ui/articles/nowhere").status_code == 404


def test_an_author_sees_no_review_buttons(
    ui: tuple[TestClient, dict[str, str]], runtime: Runtime
) -> None:
    client, made = ui
    sign_in(client, made["alice"])
    page = client.get("/ui/articles/parking")
    assert page.status_code == 200 and "Approve v1" not in page.text
    forced = client.post("/ui/articles/parking/versions/1/approve", data={"revision": "2"})
    assert forced.status_code == 403
    with Session(runtime.engine) as s:
        assert service.find_version(s, "parking", 1).status == Status.in_review


def test_every_control_has_a_label(ui: tuple[TestClient, dict[str, str]]) -> None:
    client, made = ui
    pages = [client.get("/ui/sign-in").text]
    sign_in(client, made["rob"])
    pages += [
        client.get(p).text
        for p in ("/ui/queue", "/ui/freshness", "/ui/feedback", "/ui/articles/parking")
    ]
    assert '<a href="/ui/queue" aria-current="page">' in pages[1]
    for html in pages:
        assert '<html lang="en">' in html and '<main id="main"' in html
        controls = re.findall(r"<(?:input|textarea)(?![^>]*type=\"hidden\")[^>]*>", html)
        for control in controls:
            found = re.search(r'id="([^"]+)"', control)
            assert found, f"control without an id: {control}"
            assert f'<label for="{found[1]}"' in html, f"no label for {found[1]}"
        assert re.findall(r"<button[^>]*>", html), "every page has a keyboard-reachable action"
        assert not re.findall(r"<button[^>]*>\s*</button>", html), "a button without a name"


def test_reverify_from_the_freshness_dashboard(
    ui: tuple[TestClient, dict[str, str]], runtime: Runtime
) -> None:
    client, made = ui
    with Session(runtime.engine) as s:
        live(s, runtime.sync, article_id="flu-shots", owner="Raj", last_reviewed=date(2020, 1, 1))
    sign_in(client, made["alice"])
    assert "Re-verify" not in client.get("/ui/freshness").text  # authors cannot re-verify
    sign_in(client, made["rob"])
    before = client.get("/ui/freshness").text
    assert "Raj: 1 due" in before and 'aria-label="Re-verify Flu Shots (by owner)"' in before
    done = client.post("/ui/articles/flu-shots/reverify", data={"number": "1"})
    assert done.status_code == 303
    assert "Re-verified" in client.get(done.headers["location"]).text
    assert "Raj: 1 due" not in client.get("/ui/freshness").text
