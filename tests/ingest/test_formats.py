"""Each supported format through unstructured, offline."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest.chunk import chunk_blocks
from ingest.parse import BlockKind, parse_file
from tests.ingest.samples import FLU_PDF_LINES, make_pdf, write_docx
from tests.offline import REFUSE_NETWORK

REPO = Path(__file__).resolve().parents[2]
LIMIT = 1_000_000


def _write_all(root: Path) -> dict[str, Path]:
    folder = root / "facilities"
    folder.mkdir(parents=True)
    files = {
        "md": folder / "hours.md",
        "txt": folder / "wifi.txt",
        "html": folder / "cafe.html",
        "pdf": folder / "flu.pdf",
        "docx": folder / "parking.docx",
    }
    files["md"].write_text(
        "---\nid: clinic-hours\ntitle: Clinic Hours\nowner: Ops\naudience: patient\n---\n"
        "# Clinic Hours\n\n## Weekdays\n\nThe clinic is open 8 a.m. to 6 p.m. on weekdays.\n"
    )
    files["txt"].write_text(
        "Guest Wi-Fi\n\nConnect to the network named Guest and accept the terms to go online.\n"
    )
    files["html"].write_text(
        "<html><body><h1>Cafeteria</h1><h2>Hours</h2>"
        "<p>The cafeteria on the ground floor serves hot meals from 7 a.m. to 7 p.m.</p>"
        "<script>fetch('https://tracker.example/beacon')</script></body></html>"
    )
    files["pdf"].write_bytes(make_pdf(FLU_PDF_LINES))
    write_docx(files["docx"])
    return files


def test_every_format_parses_into_sections(tmp_path: Path) -> None:
    files = _write_all(tmp_path)
    (files["pdf"].parent / "flu.pdf.meta.yaml").write_text(
        "id: flu-clinic\nowner: Infection Prevention\naudience: patient\nclinical: true\n"
    )
    (files["docx"].parent / "_manifest.yaml").write_text("owner: Facilities\n")
    parsed = {kind: parse_file(path, tmp_path, max_bytes=LIMIT) for kind, path in files.items()}

    assert parsed["md"].article_id == "clinic-hours"
    assert parsed["txt"].article_id == "facilities-wifi"
    assert all(p.meta.service_line == "facilities" for p in parsed.values())

    pdf = parsed["pdf"]
    assert pdf.article_id == "flu-clinic"  # from the sidecar
    assert (pdf.meta.owner, pdf.meta.clinical, pdf.meta.title) == (
        "Infection Prevention",
        True,
        "Flu Vaccine Clinic",
    )
    pdf_chunks = chunk_blocks(pdf.blocks, pdf.meta.title)
    assert any(
        c.section == "Who can get a shot" and "six months and older" in c.text for c in pdf_chunks
    )
    assert any(c.section == "Cost" and "no cost to you" in c.text for c in pdf_chunks)

    docx = parsed["docx"]
    assert docx.meta.owner == "Facilities"  # from the folder manifest
    assert docx.meta.title == "Visitor Parking"
    docx_chunks = chunk_blocks(docx.blocks, docx.meta.title)
    sections = {c.section: c.text for c in docx_chunks}
    assert "Garage B" in sections["Where to park"]
    assert "- Bring your parking ticket" in sections["Where to park"]
    assert "Duration: All day; Price: $8" in sections["Rates"]  # table rows read alone

    html_text = " ".join(b.text for b in parsed["html"].blocks)
    assert "hot meals" in html_text and "tracker" not in html_text
    assert [b.kind for b in parsed["txt"].blocks] == [BlockKind.heading, BlockKind.text]


def test_partitioning_needs_no_network(tmp_path: Path) -> None:
    """All five partitioners in a fresh process whose sockets raise; a download would fail it."""
    files = _write_all(tmp_path / "corpus")
    empty = tmp_path / "empty-home"
    empty.mkdir()
    script = REFUSE_NETWORK + textwrap.dedent(
        f"""
        import socket, sys
        try:
            socket.create_connection(("pypi.org", 443))
        except OSError:
            pass
        else:
            sys.exit("the network guard is not working")
        from pathlib import Path
        from ingest.parse import parse_file
        root = Path({str(tmp_path / "corpus")!r})
        for path in sorted(root.rglob("*.*")):
            parsed = parse_file(path, root, max_bytes=10**7)
            assert any(b.text for b in parsed.blocks), path
            print(path.suffix, len(parsed.blocks))
        """
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(empty),  # no cached NLTK or Hugging Face data to hide a download
        "NLTK_DATA": str(empty),
        "XDG_CACHE_HOME": str(empty),
        "HF_HOME": str(empty),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(line.split()[0] for line in result.stdout.splitlines()) == sorted(
        path.suffix for path in files.values()
    )


@pytest.mark.skipif(
    subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0,
    reason="unshare -rn (a user namespace without network) is not permitted here",
)
def test_partitioning_in_a_namespace_without_network(tmp_path: Path) -> None:
    """The same, with the kernel taking the network away (no loopback either)."""
    _write_all(tmp_path / "corpus")
    script = (
        "from pathlib import Path; from ingest.parse import parse_file; "
        f"root = Path({str(tmp_path / 'corpus')!r}); "
        "[parse_file(p, root, max_bytes=10**7) for p in sorted(root.rglob('*.*'))]; print('ok')"
    )
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, "-c", script],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
