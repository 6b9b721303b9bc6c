"""Small real PDF and DOCX files, generated in the test (no binary fixtures in the repo)."""

from pathlib import Path


def make_pdf(lines: list[tuple[int, str]]) -> bytes:
    """A one-page PDF with a real text layer: (font size, text) lines, top to bottom."""
    y = 740
    ops = []
    for size, text in lines:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"BT /F1 {size} Tf 72 {y} Td ({escaped}) Tj ET")
        y -= size + 12
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


FLU_PDF_LINES = [
    (20, "Flu Vaccine Clinic"),
    (14, "Who can get a shot"),
    (11, "Everyone six months and older should get a flu vaccine every season."),
    (11, "Walk-ins are welcome on weekdays from 8 a.m. to 5 p.m. at the main lobby."),
    (14, "Cost"),
    (11, "Most insurance plans cover the flu vaccine at no cost to you."),
]


def write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Visitor Parking", level=1)
    document.add_heading("Where to park", level=2)
    document.add_paragraph(
        "Visitors park in Garage B on Elm Street; the first two hours are free of charge."
    )
    document.add_paragraph("Bring your parking ticket to the front desk", style="List Bullet")
    document.add_heading("Rates", level=2)
    table = document.add_table(rows=3, cols=2)
    for row, (left, right) in enumerate(
        [("Duration", "Price"), ("Up to 2 hours", "Free"), ("All day", "$8")]
    ):
        table.cell(row, 0).text = left
        table.cell(row, 1).text = right
    document.save(str(path))
