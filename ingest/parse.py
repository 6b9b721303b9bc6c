"""Files -> metadata + structural blocks, through `unstructured`."""

import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from governance.drafts import MAX_REVIEW_DAYS
from governance.errors import InvalidInput
from governance.models import ArticleMetaBase, Audience
from ingest import offline  # noqa: F401  (must run before unstructured partitions anything)

SUPPORTED = {
    ".md": "md",
    ".markdown": "md",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
BINARY_KINDS = ("pdf", "docx")
# Declared, not detected: per-file language detection was half of all parsing time.
LANGUAGES = ["eng"]
# Bump when parsing or chunking changes what a file turns into: every file is then re-read.
PARSER_VERSION = "2"
SIDECAR_SUFFIX = ".meta.yaml"
MANIFEST_NAME = "_manifest.yaml"
META_KEYS = {"id", *ArticleMetaBase.model_fields}


class BlockKind(StrEnum):
    heading = "heading"
    text = "text"
    list_item = "list_item"
    table = "table"


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str
    depth: int = 0


@dataclass(frozen=True)
class ParsedFile:
    path: Path
    article_id: str
    meta: ArticleMetaBase
    body: str
    blocks: list[Block]


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing empty files and files over the size limit before reading."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from exc
    if size == 0:
        raise InvalidInput(f"{path}: file is empty (0 bytes)")
    if size > max_bytes:
        raise InvalidInput(f"{path}: {size} bytes is over the {max_bytes}-byte limit")
    return path.read_bytes()


def _metadata_files(path: Path, root: Path) -> list[Path]:
    """Manifests from the root down, then the sidecar: later ones override earlier ones."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
    found: list[Path] = []
    folder = root
    for part in relative.parts[:-1]:
        folder = folder / part
        if (folder / MANIFEST_NAME).is_file():
            found.append(folder / MANIFEST_NAME)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        found.append(sidecar)
    return found


def source_fingerprint(path: Path, root: Path, raw: bytes) -> str:
    """Everything a file's stored version depends on, hashed before any parsing.

    The file's bytes, its path under the ingested folder (id and service line come
    from it), its sidecar and manifests, and the parser version.
    """
    digest = hashlib.sha256()
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.name
    for part in (PARSER_VERSION, relative):
        digest.update(part.encode() + b"\x1f")
    digest.update(hashlib.sha256(raw).digest())
    for meta_file in _metadata_files(path, root):
        digest.update(meta_file.name.encode() + b"\x1f" + meta_file.read_bytes())
    return digest.hexdigest()


def decode_text(path: Path, raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise InvalidInput(
            f"{path}: looks binary (NUL bytes), not a text document; "
            "if it is UTF-16, re-save it as UTF-8"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise InvalidInput(f"{path}: file has no text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path, max_bytes: int) -> str:
    return decode_text(path, read_bytes(path, max_bytes))


def check_binary(path: Path, raw: bytes, kind: str) -> None:
    """Refuse junk, truncated and corrupt PDF/DOCX with a reason before a parser sees them."""
    if kind == "pdf":
        if b"%PDF-" not in raw[:1024]:
            raise InvalidInput(f"{path}: not a PDF (no %PDF- header); is the file extension wrong?")
        if b"%%EOF" not in raw[-2048:]:
            raise InvalidInput(f"{path}: PDF is truncated (no %%EOF marker at the end)")
        return
    if not raw.startswith(b"PK"):
        raise InvalidInput(f"{path}: not a Word document (.docx files are ZIP archives)")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            if "word/document.xml" not in archive.namelist():
                raise InvalidInput(f"{path}: ZIP archive without word/document.xml, not a .docx")
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{path}: corrupt or truncated DOCX ({exc})") from None
    if bad is not None:
        raise InvalidInput(f"{path}: corrupt DOCX (damaged member {bad})")


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end == -1:
        raise InvalidInput(f"{path}: front matter opened with '---' is never closed")
    raw = text[4:end]
    after = text.find("\n", end + 4)
    body = text[after + 1 :] if after != -1 else ""
    return _load_yaml(raw, path, "front matter"), body


def _load_yaml(raw: str, path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidInput(f"{path}: {what} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: {what} must be a mapping of keys to values")
    return data


def folder_metadata(path: Path, root: Path) -> dict[str, Any]:
    """Defaults for a file: service line from its folder, then manifests, then a sidecar."""
    merged: dict[str, Any] = {}
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
    if len(relative.parts) > 1:
        merged["service_line"] = relative.parts[0]
    for meta_file in _metadata_files(path, root):
        what = "sidecar" if meta_file.name.endswith(SIDECAR_SUFFIX) else "manifest"
        try:
            text = meta_file.read_text("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{meta_file}: {what} is not valid UTF-8") from None
        merged.update(_load_yaml(text, meta_file, what))
    return merged


def article_id_for(path: Path, root: Path) -> str:
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return "-".join(relative.with_suffix("").parts).lower().replace(" ", "-")


def build_meta(
    raw: dict[str, Any], path: Path, root: Path, title: str
) -> tuple[str, ArticleMetaBase]:
    unknown = sorted(set(raw) - META_KEYS)
    if unknown:
        raise InvalidInput(f"{path}: unknown metadata field(s): {', '.join(unknown)}")
    values = dict(raw)
    article_id = str(values.pop("id", None) or article_id_for(path, root)).strip()
    if not article_id or any(c in article_id for c in "/\\ \t\n?#"):
        raise InvalidInput(f"{path}: field 'id' must be a non-empty slug, got {article_id!r}")
    values.setdefault("title", title)
    values.setdefault("owner", "unassigned")
    values.setdefault("service_line", "general")
    # Unlabelled content is treated as internal until an owner says otherwise.
    values.setdefault("audience", Audience.staff.value)
    if isinstance(values.get("last_reviewed"), str):
        try:
            values["last_reviewed"] = date.fromisoformat(values["last_reviewed"])
        except ValueError:
            raise InvalidInput(
                f"{path}: field 'last_reviewed' must be a date (YYYY-MM-DD), "
                f"got {values['last_reviewed']!r}"
            ) from None
    try:
        meta = ArticleMetaBase.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: field {field!r}: {first['msg']}") from None
    if not 0 < meta.review_every_days <= MAX_REVIEW_DAYS:
        raise InvalidInput(
            f"{path}: field 'review_every_days' must be between 1 and {MAX_REVIEW_DAYS}"
        )
    if not meta.title.strip() or not meta.owner.strip() or not meta.service_line.strip():
        raise InvalidInput(f"{path}: fields 'title', 'owner' and 'service_line' must not be blank")
    return article_id, meta


def _table_lines(element: Any) -> list[str]:
    """Render a table row by row as 'Header: value; Header: value' so each row reads alone."""
    html = getattr(element.metadata, "text_as_html", None)
    if not html:
        return [element.text]
    from lxml import html as lxml_html

    rows = [
        [" ".join(cell.text_content().split()) for cell in row.xpath("./th|./td")]
        for row in lxml_html.fromstring(html).xpath("//tr")
    ]
    rows = [r for r in rows if any(r)]
    if len(rows) < 2:
        return [" | ".join(r) for r in rows]
    header, *data = rows
    return [
        "; ".join(f"{h}: {v}" if h else v for h, v in zip(header, row, strict=False))
        for row in data
    ]


def _elements(path: Path, body: str | bytes, kind: str) -> list[Any]:
    if kind == "pdf":
        from unstructured.partition.pdf import partition_pdf

        assert isinstance(body, bytes)
        try:  # "fast": pdfminer's text layer only; no layout model, no OCR
            return list(partition_pdf(file=io.BytesIO(body), strategy="fast", languages=LANGUAGES))
        except Exception as exc:
            raise InvalidInput(
                f"{path}: cannot read PDF ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
    if kind == "docx":
        from unstructured.partition.docx import partition_docx

        assert isinstance(body, bytes)
        try:
            return list(partition_docx(file=io.BytesIO(body), languages=LANGUAGES))
        except Exception as exc:
            raise InvalidInput(
                f"{path}: cannot read DOCX ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
    assert isinstance(body, str)
    if kind == "md":
        from unstructured.partition.md import partition_md

        return list(partition_md(text=body, languages=LANGUAGES))
    if kind == "html":
        from unstructured.partition.html import partition_html

        return list(partition_html(text=body, languages=LANGUAGES))
    from unstructured.partition.text import partition_text

    return list(partition_text(text=body, languages=LANGUAGES))


def partition(body: str | bytes, kind: str, path: Path = Path("<text>")) -> list[Block]:
    elements = _elements(path, body, kind)
    blocks: list[Block] = []
    for position, element in enumerate(elements):
        text = " ".join(str(element.text).split())
        if not text:
            continue
        category = element.category
        if category == "Header" and kind == "pdf" and position == 0:
            category = "Title"  # a PDF's first line sits in the header band: usually its title
        if category == "Title":
            depth = element.metadata.category_depth
            sentence_like = text.endswith((".", "?", "!", ":")) and len(text.split()) > 3
            long_line = len(text.split()) > 20
            if depth is None and kind in ("text", "pdf") and (sentence_like or long_line):
                blocks.append(Block(BlockKind.text, text))
            else:
                blocks.append(Block(BlockKind.heading, text, depth if depth is not None else 1))
        elif category == "Table":
            blocks.append(Block(BlockKind.table, "\n".join(_table_lines(element))))
        elif category == "ListItem":
            blocks.append(Block(BlockKind.list_item, text))
        elif category in ("PageBreak", "Header", "Footer", "Image"):
            continue
        else:
            blocks.append(Block(BlockKind.text, text))
    return blocks


def kind_of(path: Path) -> str:
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED))
        raise InvalidInput(
            f"{path}: unsupported file type {path.suffix or '(none)'!r} ({supported})"
        )
    return kind


def parse_file(path: Path, root: Path, *, max_bytes: int, data: bytes | None = None) -> ParsedFile:
    """One file -> metadata and blocks; `data` is the file's bytes if the caller read them."""
    kind = kind_of(path)
    data = read_bytes(path, max_bytes) if data is None else data
    front: dict[str, Any] = {}
    if kind in BINARY_KINDS:
        check_binary(path, data, kind)
        blocks = partition(data, kind, path)
        body = "\n\n".join(b.text for b in blocks)
    else:
        text = decode_text(path, data)
        front, body = split_front_matter(text, path) if kind in ("md", "text") else ({}, text)
        blocks = partition(body, kind, path)
    raw = {**folder_metadata(path, root), **front}
    if not any(b.kind != BlockKind.heading for b in blocks):
        hint = " (a scanned PDF has no text layer; Canon does not run OCR)" if kind == "pdf" else ""
        raise InvalidInput(f"{path}: no text content after parsing{hint}")
    headings = [b for b in blocks if b.kind == BlockKind.heading]
    title = headings[0].text if headings else path.stem.replace("-", " ").replace("_", " ").title()
    article_id, meta = build_meta(raw, path, root, title)
    return ParsedFile(path=path, article_id=article_id, meta=meta, body=body.strip(), blocks=blocks)
