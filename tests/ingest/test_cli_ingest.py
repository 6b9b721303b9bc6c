"""`canon ingest` and `canon doctor` as a user runs them."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canon.cli import app
from tests.ingest.samples import FLU_PDF_LINES, make_pdf, write_docx

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CANON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CANON_DATABASE_URL", raising=False)
    monkeypatch.delenv("CANON_QDRANT_URL", raising=False)
    return tmp_path


def test_ingest_mixed_formats_json_summary_and_exit_code(home: Path) -> None:
    folder = home / "docs" / "facilities"
    folder.mkdir(parents=True)
    (folder / "flu.pdf").write_bytes(make_pdf(FLU_PDF_LINES))
    write_docx(folder / "parking.docx")
    (folder / "_manifest.yaml").write_text("owner: Facilities\naudience: patient\n")
    (folder / "fake.pdf").write_bytes(b"GIF89a not a pdf at all")
    (folder / "big.txt").write_text("Visiting hours.\n\n" + "More text. " * 12000)

    result = runner.invoke(app, ["ingest", str(home / "docs"), "--json", "--max-bytes", "100000"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    summary = data["summary"]
    assert (summary["created"], summary["failed"], summary["files"]) == (2, 2, 4)
    assert summary["chunks"] >= 4 and summary["files_per_s"] > 0
    errors = {Path(f["path"]).name: f["error"] for f in data["files"] if f["error"]}
    assert "not a PDF" in errors["fake.pdf"]
    assert "over the 100000-byte limit" in errors["big.txt"]

    (folder / "fake.pdf").unlink()
    (folder / "big.txt").unlink()
    again = runner.invoke(app, ["ingest", str(home / "docs")])
    assert again.exit_code == 0
    assert "unchanged 2, failed 0" in again.stdout


def test_doctor_reports_and_repairs(home: Path) -> None:
    folder = home / "docs" / "facilities"
    folder.mkdir(parents=True)
    write_docx(folder / "parking.docx")
    assert runner.invoke(app, ["ingest", str(home / "docs"), "--submit"]).exit_code == 0
    approve = ["review", "approve", "facilities-parking", "--actor", "rita", "--role", "review"]
    assert runner.invoke(app, approve).exit_code == 0
    publish = ["publish", "facilities-parking", "--actor", "rita", "--role", "review"]
    assert runner.invoke(app, publish).exit_code == 0

    healthy = runner.invoke(app, ["doctor", "--check-only", "--json"])
    assert healthy.exit_code == 0 and json.loads(healthy.stdout)["healthy"] is True

    from canon.runtime import Runtime
    from canon.settings import Settings

    rt = Runtime(Settings())
    victim = next(iter(rt.store.point_versions()))
    rt.store.delete_points([victim])
    rt.close()

    check = runner.invoke(app, ["doctor", "--check-only", "--json"])
    assert check.exit_code == 1
    assert json.loads(check.stdout)["reindexed"] == ["facilities-parking v1"]
    fix = runner.invoke(app, ["doctor", "--json"])
    assert fix.exit_code == 0
    report = json.loads(fix.stdout)
    assert report["reindexed"] == ["facilities-parking v1"] and report["points"] >= 2
    assert json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)["healthy"] is True
