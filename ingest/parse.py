"""Files -> metadata + structural blocks, through `unstructured`."""

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

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
}
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


def read_text(path: Path, max_bytes: int) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from exc
    if size == 0:
        raise InvalidInput(f"{path}: file is empty (0 bytes)")
    if size > max_bytes:
        raise InvalidInput(f"{path}: {size} bytes is over the {max_bytes}-byte limit")
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise InvalidInput(f"{path}: looks binary (NUL bytes), not a text document")
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
    folder = root
    for part in relative.parts[:-1]:
        folder = folder / part
        manifest = folder / MANIFEST_NAME
        if manifest.is_file():
            merged.update(_load_yaml(manifest.read_text("utf-8"), manifest, "manifest"))
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        merged.update(_load_yaml(sidecar.read_text("utf-8"), sidecar, "sidecar"))
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
    if meta.review_every_days <= 0:
        raise InvalidInput(f"{path}: field 'review_every_days' must be positive")
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


def partition(body: str, kind: str) -> list[Block]:
    from unstructured.partition.html import partition_html
    from unstructured.partition.md import partition_md
    from unstructured.partition.text import partition_text

    if kind == "md":
        elements = partition_md(text=body)
    elif kind == "html":
        elements = partition_html(text=body)
    else:
        elements = partition_text(text=body)
    blocks: list[Block] = []
    for element in elements:
        text = " ".join(str(element.text).split())
        if not text:
            continue
        category = element.category
        if category == "Title":
            depth = element.metadata.category_depth
            sentence_like = text.endswith((".", "?", "!")) and len(text.split()) > 3
            if depth is None and (kind == "text" and sentence_like):
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


def parse_file(path: Path, root: Path, *, max_bytes: int) -> ParsedFile:
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED))
        raise InvalidInput(
            f"{path}: unsupported file type {path.suffix or '(none)'!r} ({supported})"
        )
    text = read_text(path, max_bytes)
    front, body = split_front_matter(text, path) if kind in ("md", "text") else ({}, text)
    raw = {**folder_metadata(path, root), **front}
    blocks = partition(body, kind)
    if not any(b.kind != BlockKind.heading for b in blocks):
        raise InvalidInput(f"{path}: no text content after parsing")
    headings = [b for b in blocks if b.kind == BlockKind.heading]
    title = headings[0].text if headings else path.stem.replace("-", " ").replace("_", " ").title()
    article_id, meta = build_meta(raw, path, root, title)
    return ParsedFile(path=path, article_id=article_id, meta=meta, body=body.strip(), blocks=blocks)
