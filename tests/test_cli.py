"""The CLI as a user drives it: exit codes, errors that name the culprit, JSON output."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canon.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CANON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CANON_DATABASE_URL", raising=False)
    return tmp_path


def test_ingest_reports_counts_and_fails_on_bad_files(home: Path) -> None:
    docs = home / "docs" / "portal"
    docs.mkdir(parents=True)
    (docs / "good.md").write_text(
        "---\nid: portal-sign-up\nservice_line: portal\naudience: patient\nowner: Ann\n---\n"
        "# Sign up\n\nUse the app.\n"
    )
    (docs / "bad.md").write_bytes(b"")
    result = runner.invoke(app, ["ingest", str(home / "docs"), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["summary"]["created"] == 1 and data["summary"]["failed"] == 1
    failure = next(f for f in data["files"] if f["outcome"] == "failed")
    assert "bad.md" in failure["error"] and "empty" in failure["error"]

    again = runner.invoke(app, ["ingest", str(docs / "good.md"), "--json"])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["summary"]["unchanged"] == 1


def test_review_flow_and_audit(home: Path) -> None:
    docs = home / "docs" / "portal"
    docs.mkdir(parents=True)
    (docs / "a.md").write_text(
        "---\naudience: patient\nowner: Ann\n---\n# Sign up\n\nUse the app.\n"
    )
    assert (
        runner.invoke(app, ["ingest", str(home / "docs"), "--submit", "--author", "ann"]).exit_code
        == 0
    )
    own = runner.invoke(app, ["review", "approve", "portal-a", "--actor", "ann"])
    assert own.exit_code != 0
    ok = runner.invoke(app, ["review", "approve", "portal-a", "--actor", "rob"])
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["review", "list", "--status", "approved", "--json"])
    assert [r["article_id"] for r in json.loads(listed.stdout)] == ["portal-a"]
    verified = runner.invoke(app, ["audit", "verify", "--json"])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["events"] == 3


def test_a_bad_setting_is_named_without_a_traceback(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from canon.cli import main

    monkeypatch.setenv("CANON_EMBED_BACKEND", "bogus")
    monkeypatch.setattr("sys.argv", ["canon", "freshness"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert "CANON_EMBED_BACKEND='bogus'" in said and "Traceback" not in said
    assert not (home / "home").exists()  # nothing was created or written
