"""Hostile and broken files: each fails alone with a reason; nothing stored changes."""

import io
import zipfile
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from governance.models import ArticleVersion, AuditEvent, Chunk
from ingest.pipeline import Outcome, ingest
from tests.ingest.samples import FLU_PDF_LINES, make_pdf, write_docx

LIMIT = 200_000


def snapshot(engine: Engine) -> list[tuple[object, ...]]:
    """Every stored version, chunk and audit event, to compare before and after."""
    with Session(engine) as s:
        versions = [
            (v.article_id, v.number, v.status, v.content_hash, v.revision)
            for v in s.exec(select(ArticleVersion).order_by(col(ArticleVersion.id))).all()
        ]
        chunks = [
            (c.version_id, c.ordinal, c.content_hash)
            for c in s.exec(select(Chunk).order_by(col(Chunk.id))).all()
        ]
        events = [e.hash for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()]
    return [*versions, *chunks, *events]


def bad_files(folder: Path) -> dict[str, str]:
    """name -> the phrase its error must contain."""
    pdf = make_pdf(FLU_PDF_LINES)
    good_docx = folder / "template.docx.tmp"
    write_docx(good_docx)
    docx_bytes = good_docx.read_bytes()
    good_docx.unlink()
    damaged = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx_bytes)) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                dst.writestr(item, src.read(item.filename))
    files: dict[str, tuple[bytes, str]] = {
        "junk.pdf": (bytes(range(256)) * 8, "not a PDF"),
        "truncated.pdf": (pdf[: len(pdf) // 2], "truncated"),
        "corrupt.docx": (docx_bytes[: len(docx_bytes) // 3], "corrupt or truncated DOCX"),
        "not-word.docx": (damaged.getvalue(), "without word/document.xml"),
        "zip-named.docx": (b"plain text pretending to be a Word file", "not a Word document"),
        "blank.md": (b"\n\n   \n\t\n", "has no text"),
        "zero.txt": (b"", "empty (0 bytes)"),
        "huge.md": (b"# Huge\n\n" + b"word " * (LIMIT // 4), f"over the {LIMIT}-byte limit"),
        "latin1.txt": ("Caf\xe9 hours: 7 a.m. to 3 p.m.".encode("latin-1"), "not valid UTF-8"),
        "utf16.md": ("# Hours\n\nOpen daily.".encode("utf-16"), "re-save it as UTF-8"),
        "scripts-only.html": (
            b"<html><head><script>alert(1)</script></head><body>"
            b"<script>document.write('hi')</script><style>p{}</style></body></html>",
            "no text content",
        ),
    }
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content)
    return {name: phrase for name, (_, phrase) in files.items()}


def test_each_bad_file_fails_alone_with_a_reason(tmp_path: Path, engine: Engine) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    expected = bad_files(folder)
    (folder / "scripted.html").write_text(
        "<html><body><script>steal()</script><h1>Pharmacy</h1>"
        "<p>The pharmacy on level 2 fills prescriptions until 9 p.m.</p></body></html>"
    )
    (folder / "flu.pdf").write_bytes(make_pdf(FLU_PDF_LINES))
    report = ingest(engine, [folder], author="alice", max_bytes=LIMIT)

    failed = {Path(f.path).name: f.error or "" for f in report.failed}
    assert set(failed) == set(expected)
    for name, phrase in expected.items():
        assert name in failed[name] and phrase in failed[name], failed[name]
    assert {Path(f.path).name for f in report.files if f.outcome == Outcome.created} == {
        "scripted.html",
        "flu.pdf",
    }
    with Session(engine) as s:
        text = " ".join(c.text for c in s.exec(select(Chunk)).all())
    assert "pharmacy on level 2" in text and "steal" not in text


def test_a_broken_replacement_changes_nothing_stored(tmp_path: Path, engine: Engine) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    pdf, docx_path = folder / "flu.pdf", folder / "parking.docx"
    pdf.write_bytes(make_pdf(FLU_PDF_LINES))
    write_docx(docx_path)
    first = ingest(engine, [folder], author="alice", submit=True)
    assert first.count(Outcome.created) == 2
    before = snapshot(engine)

    good_pdf = pdf.read_bytes()
    for broken_pdf, broken_docx in [
        (good_pdf[:-300], docx_path.read_bytes()[:500]),  # truncated
        (b"\x00\x01binary junk" * 50, b"PK\x03\x04 not really a zip"),  # junk
        (b"", b""),  # emptied
    ]:
        pdf.write_bytes(broken_pdf)
        docx_path.write_bytes(broken_docx)
        report = ingest(engine, [folder], author="alice", submit=True)
        assert report.count(Outcome.failed) == 2, report.files
        assert snapshot(engine) == before
