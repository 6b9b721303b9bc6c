from pathlib import Path

import pytest

from governance.errors import InvalidInput
from governance.models import Audience
from ingest.parse import BlockKind, parse_file

ARTICLE = """---
id: billing-hours
title: Billing hours
owner: Maria Chen
service_line: billing
audience: patient
review_every_days: 180
last_reviewed: 2026-06-01
clinical: false
---
# Billing hours

We answer billing questions by phone.

## Phone hours

Monday to Friday, 8:00 a.m. to 5:00 p.m.

| Location | Hours |
|---|---|
| Main campus | 8-5 |
"""


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_markdown_front_matter_and_structure(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "billing/hours.md", ARTICLE), tmp_path, max_bytes=10**6)
    assert parsed.article_id == "billing-hours"
    assert parsed.meta.audience == Audience.patient
    assert (
        parsed.meta.last_reviewed is not None
        and parsed.meta.last_reviewed.isoformat() == "2026-06-01"
    )
    kinds = [b.kind for b in parsed.blocks]
    assert kinds[0] == BlockKind.heading and BlockKind.table in kinds
    table = next(b for b in parsed.blocks if b.kind == BlockKind.table)
    assert table.text == "Location: Main campus; Hours: 8-5"


def test_id_and_service_line_default_from_path(tmp_path: Path) -> None:
    path = write(tmp_path, "pharmacy/refills.txt", "Refills\n\nRequest a refill three days ahead.")
    parsed = parse_file(path, tmp_path, max_bytes=10**6)
    assert parsed.article_id == "pharmacy-refills"
    assert parsed.meta.service_line == "pharmacy"
    assert parsed.meta.audience == Audience.staff  # unlabelled content is internal until labelled


def test_sidecar_metadata(tmp_path: Path) -> None:
    path = write(
        tmp_path, "visitors/policy.html", "<h1>Visitors</h1><p>Two visitors at a time.</p>"
    )
    write(tmp_path, "visitors/policy.html.meta.yaml", "audience: patient\nowner: Ann\n")
    parsed = parse_file(path, tmp_path, max_bytes=10**6)
    assert parsed.meta.audience == Audience.patient and parsed.meta.owner == "Ann"


def test_html_scripts_are_dropped(tmp_path: Path) -> None:
    html = "<h1>Portal</h1><script>stealCookies()</script><p>Reset your password online.</p>"
    parsed = parse_file(write(tmp_path, "portal.html", html), tmp_path, max_bytes=10**6)
    text = " ".join(b.text for b in parsed.blocks)
    assert "Reset your password" in text and "stealCookies" not in text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.xyz", "hello", "unsupported file type '.xyz'"),
        ("empty.md", "", "empty"),
        ("blank.md", "   \n\n", "no text"),
        ("latin1.md", "Caf\xe9 hours".encode("latin-1"), "not valid UTF-8"),
        ("binary.txt", b"\x00\x01\x02binary", "binary"),
        (
            "bad-yaml.md",
            "---\ntitle: [unclosed\n---\n# T\n\nBody.",
            "front matter is not valid YAML",
        ),
        ("unclosed.md", "---\ntitle: x\n# T\n\nBody.", "never closed"),
        ("bad-field.md", "---\nreview_every_days: soon\n---\n# T\n\nBody.", "review_every_days"),
        ("bad-audience.md", "---\naudience: everyone\n---\n# T\n\nBody.", "audience"),
        ("bad-date.md", "---\nlast_reviewed: yesterday\n---\n# T\n\nBody.", "last_reviewed"),
        ("unknown-key.md", "---\nowner_email: a@b\n---\n# T\n\nBody.", "owner_email"),
        ("only-heading.md", "# Just a title\n", "no text content"),
    ],
)
def test_bad_input_names_the_file_and_problem(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InvalidInput) as excinfo:
        parse_file(path, tmp_path, max_bytes=10**6)
    assert str(path) in str(excinfo.value)
    assert message in str(excinfo.value)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "huge.md", "# Big\n\n" + "word " * 5000)
    with pytest.raises(InvalidInput, match="over the 1000-byte limit"):
        parse_file(path, tmp_path, max_bytes=1000)
