"""What changed between two versions of an article: metadata and a line diff of the body."""

import difflib
from dataclasses import dataclass, field
from typing import Literal

from sqlmodel import Session

from governance.errors import InvalidInput, NotFound
from governance.models import ArticleMetaBase, ArticleVersion
from governance.service import find_version, get_article, get_version

LineKind = Literal["context", "added", "removed", "hunk"]


@dataclass(frozen=True)
class DiffLine:
    kind: LineKind
    text: str
    old_line: int | None = None
    new_line: int | None = None


@dataclass(frozen=True)
class FieldChange:
    name: str
    old: str
    new: str


@dataclass(frozen=True)
class VersionDiff:
    article_id: str
    from_version: int
    to_version: int
    fields: list[FieldChange] = field(default_factory=list)
    lines: list[DiffLine] = field(default_factory=list)
    unified: str = ""

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.kind == "added")

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.kind == "removed")

    @property
    def identical(self) -> bool:
        return not self.fields and not self.added and not self.removed


def _lines(old: str, new: str, context: int) -> list[DiffLine]:
    a, b = old.splitlines(), new.splitlines()
    out: list[DiffLine] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        out.append(
            DiffLine(
                "hunk",
                f"@@ -{first[1] + 1},{last[2] - first[1]} +{first[3] + 1},{last[4] - first[3]} @@",
            )
        )
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(
                    DiffLine("context", a[i], i + 1, j1 + k + 1)
                    for k, i in enumerate(range(i1, i2))
                )
                continue
            if tag in ("replace", "delete"):
                out.extend(DiffLine("removed", a[i], old_line=i + 1) for i in range(i1, i2))
            if tag in ("replace", "insert"):
                out.extend(DiffLine("added", b[j], new_line=j + 1) for j in range(j1, j2))
    return out


def between(old: ArticleVersion, new: ArticleVersion, *, context: int = 3) -> VersionDiff:
    if old.article_id != new.article_id:
        raise InvalidInput("a diff compares two versions of the same article")
    fields = [
        FieldChange(name, str(getattr(old, name)), str(getattr(new, name)))
        for name in ArticleMetaBase.model_fields
        if getattr(old, name) != getattr(new, name)
    ]
    unified = "".join(
        difflib.unified_diff(
            old.body.splitlines(keepends=True),
            new.body.splitlines(keepends=True),
            fromfile=f"{old.article_id} v{old.number}",
            tofile=f"{new.article_id} v{new.number}",
            n=context,
        )
    )
    return VersionDiff(
        article_id=old.article_id,
        from_version=old.number,
        to_version=new.number,
        fields=fields,
        lines=_lines(old.body, new.body, context),
        unified=unified,
    )


def versions(
    session: Session, article_id: str, from_number: int | None, to_number: int | None
) -> VersionDiff:
    """Diff two versions by number; `from` defaults to the published version (else the one
    before `to`), `to` to the newest version."""
    article = get_article(session, article_id)
    new = find_version(session, article_id, to_number)
    if from_number is not None:
        old = find_version(session, article_id, from_number)
    elif article.published_version_id is not None and article.published_version_id != new.id:
        old = get_version(session, article.published_version_id)
    elif new.number > 1:
        old = find_version(session, article_id, new.number - 1)
    else:
        raise NotFound(f"article {article_id!r} has only one version: nothing to compare")
    return between(old, new)
