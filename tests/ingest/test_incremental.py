"""Idempotent, incremental ingest: hashes per source, per article and per passage."""

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from governance.models import ArticleVersion
from ingest import pipeline
from ingest.parse import ParsedFile
from ingest.pipeline import Outcome, ingest
from tests.ingest.samples import FLU_PDF_LINES, make_pdf

ARTICLE = (
    "---\nid: {id}\ntitle: {title}\nowner: Ann\naudience: patient\n---\n"
    "# {title}\n\n## Hours\n\nOpen {hours}.\n\n## Parking\n\nPark in Garage B on Elm Street.\n"
)


def corpus(root: Path) -> Path:
    folder = root / "corpus" / "clinics"
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"clinic-{n}.md").write_text(
            ARTICLE.format(id=f"clinic-{n}", title=f"Clinic {n}", hours="8 a.m. to 5 p.m.")
        )
    (folder / "flu.pdf").write_bytes(make_pdf(FLU_PDF_LINES))
    (folder / "flu.pdf.meta.yaml").write_text("owner: Infection Prevention\n")
    return root / "corpus"


def versions(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(ArticleVersion)).one())


def test_unchanged_files_are_not_even_parsed(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = corpus(tmp_path)
    first = ingest(engine, [root], author="alice")
    assert first.count(Outcome.created) == 4

    def no_parsing(*args: object, **kwargs: object) -> ParsedFile:
        raise AssertionError("an unchanged file was parsed")

    monkeypatch.setattr(pipeline, "parse_file", no_parsing)
    again = ingest(engine, [root], author="alice")
    assert again.count(Outcome.unchanged) == 4 and not again.failed
    assert {f.article_id for f in again.files} == {f.article_id for f in first.files}
    assert versions(engine) == 4


def test_metadata_and_bytes_decide_what_is_reread(tmp_path: Path, engine: Engine) -> None:
    root = corpus(tmp_path)
    folder = root / "clinics"
    ingest(engine, [root], author="alice")

    # A sidecar change is a metadata change: the PDF gets a new version.
    (folder / "flu.pdf.meta.yaml").write_text("owner: Pharmacy\n")
    # A manifest covers every file under it; only the files it really changes get versions.
    (folder / "_manifest.yaml").write_text("owner: Ann\n")  # same owner the articles declare
    # Bytes that change but parse to the same content: re-read once, no new version.
    clinic = folder / "clinic-0.md"
    clinic.write_text(clinic.read_text() + "\n\n\n")
    report = ingest(engine, [root], author="alice")
    outcome = {Path(f.path).name: f.outcome for f in report.files}
    assert outcome["flu.pdf"] == Outcome.new_version
    assert outcome["clinic-0.md"] == Outcome.unchanged
    assert versions(engine) == 5
    with Session(engine) as s:
        newest = s.exec(select(ArticleVersion).where(ArticleVersion.number == 2)).one()
    assert newest.owner == "Pharmacy"
