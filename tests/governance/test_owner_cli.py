"""The governance commands as an owner drives them: review queue, revision checks, diff,
freshness with a service-line default cadence, re-verify, audit list and verify."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from canon.cli import app
from governance.errors import Conflict, PermissionDenied
from tests.governance.factory import disable_audit_guard

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CANON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CANON_DATABASE_URL", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def refused(*args: str) -> BaseException | None:
    """The domain error a command raised (`canon.cli.main` turns it into an exit code)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code != 0
    return result.exception


def test_owner_workflow_from_the_command_line(home: Path) -> None:
    long_ago = (datetime.now(UTC).date() - timedelta(days=200)).isoformat()
    pharmacy = home / "kb" / "pharmacy"
    pharmacy.mkdir(parents=True)
    # The service line's default cadence and owner; front matter overrides per article.
    (pharmacy / "_manifest.yaml").write_text("owner: Raj Patel\nreview_every_days: 90\n")
    (pharmacy / "refills.md").write_text(
        f"---\nid: refills\naudience: patient\nlast_reviewed: {long_ago}\n---\n"
        "# Refills\n\nAsk for refills three days ahead.\n"
    )
    (pharmacy / "hours.md").write_text(
        f"---\nid: pharmacy-hours\naudience: patient\nlast_reviewed: {long_ago}\n"
        "review_every_days: 365\nowner: Lee Wong\n---\n# Hours\n\nOpen 9 to 6.\n"
    )
    assert run("ingest", str(home / "kb"), "--submit", "--author", "ann")[0] == 0

    code, output = run("review", "queue", "--json")
    assert code == 0
    queued = {i["article_id"]: i for i in json.loads(output)}
    assert queued["refills"]["pending_status"] == "in_review"
    revision = queued["refills"]["pending_revision"]

    stale = refused("review", "approve", "refills", "--actor", "rob", "--revision", "1")
    assert isinstance(stale, Conflict)  # the version moved on since revision 1 (submit)
    assert (
        run("review", "approve", "refills", "--actor", "rob", "--revision", str(revision))[0] == 0
    )
    assert run("review", "approve", "pharmacy-hours", "--actor", "rob")[0] == 0
    assert run("publish", "--all", "--actor", "rob")[0] == 0

    code, output = run("freshness", "--json")
    assert code == 0
    report = json.loads(output)
    assert [i["article_id"] for i in report["items"]] == ["refills"]  # 200 > 90 + 30 days
    assert report["items"][0]["review_every_days"] == 90
    assert report["items"][0]["state"] == "expired" and report["by_owner"] == {"Raj Patel": 1}

    assert isinstance(
        refused("reverify", "refills", "--actor", "ann", "--role", "author"), PermissionDenied
    )
    assert run("reverify", "refills", "--actor", "rob", "--note", "checked the policy")[0] == 0
    assert json.loads(run("freshness", "--json")[1])["items"] == []

    (pharmacy / "refills.md").write_text(
        f"---\nid: refills\naudience: patient\nlast_reviewed: {long_ago}\n---\n"
        "# Refills\n\nAsk for refills five days ahead.\n"
    )
    assert run("ingest", str(home / "kb"), "--submit", "--author", "ann")[0] == 0
    code, output = run("diff", "refills")
    assert code == 0
    assert "-Ask for refills three days ahead." in output
    assert "+Ask for refills five days ahead." in output
    data = json.loads(run("diff", "refills", "--from", "1", "--to", "2", "--json")[1])
    assert (data["added"], data["removed"]) == (1, 1)

    events = json.loads(run("audit", "list", "--article", "refills", "--json")[1])
    assert [e["action"] for e in events] == [
        "create",
        "submit",
        "approve",
        "publish",
        "reverify",
        "create",
        "submit",
    ]
    assert run("audit", "verify")[0] == 0
    engine = create_engine(f"sqlite:///{home / 'home' / 'canon.db'}")
    with engine.begin() as conn:
        disable_audit_guard(conn)
        conn.execute(text("UPDATE auditevent SET reason = 'nothing to see' WHERE seq = 5"))
    engine.dispose()
    code, output = run("audit", "verify")
    assert code == 1 and "event 5" in output
