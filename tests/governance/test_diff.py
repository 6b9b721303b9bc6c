"""Diff between versions: body lines and metadata, defaulting to the published version."""

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from governance import diff, service
from governance.errors import NotFound
from governance.models import Status
from tests.governance.factory import ADMIN, NullIndex, draft, live

V1 = "Billing hours\n\nPhone: Monday to Friday, 8 to 5.\n\nCall 555-0142.\n"
V2 = "Billing hours\n\nPhone: Monday to Friday, 7:30 to 6.\nSaturday 9 to 1.\n\nCall 555-0142.\n"


def test_diff_against_the_published_version_by_default(engine: Engine) -> None:
    with Session(engine) as s:
        live(s, body=V1)
        draft(s, body=V2, owner="Maria Chen")
        d = diff.versions(s, "billing-hours", None, None)
        assert (d.from_version, d.to_version) == (1, 2)
        assert [line.text for line in d.lines if line.kind == "removed"] == [
            "Phone: Monday to Friday, 8 to 5."
        ]
        assert [line.text for line in d.lines if line.kind == "added"] == [
            "Phone: Monday to Friday, 7:30 to 6.",
            "Saturday 9 to 1.",
        ]
        assert (d.added, d.removed) == (2, 1)
        assert [(f.name, f.old, f.new) for f in d.fields] == [("owner", "Maria", "Maria Chen")]
        assert "-Phone: Monday to Friday, 8 to 5." in d.unified
        assert "+Saturday 9 to 1." in d.unified
        added = next(line for line in d.lines if line.text == "Saturday 9 to 1.")
        assert added.new_line == 4 and added.old_line is None


def test_explicit_versions_and_history_survive_retirement(engine: Engine) -> None:
    with Session(engine) as s:
        live(s, body=V1)
        live(s, body=V2)
        service.retire(s, "billing-hours", ADMIN, "clinic closed", NullIndex())
        assert [v.status for v in service.history(s, "billing-hours")] == [
            Status.superseded,
            Status.retired,
        ]
        backwards = diff.versions(s, "billing-hours", 2, 1)
        assert (backwards.added, backwards.removed) == (1, 2)
        assert diff.versions(s, "billing-hours", 1, 1).identical


def test_a_single_version_has_nothing_to_compare(engine: Engine) -> None:
    with Session(engine) as s:
        draft(s, body=V1)
        with pytest.raises(NotFound, match="only one version"):
            diff.versions(s, "billing-hours", None, None)
        with pytest.raises(NotFound):
            diff.versions(s, "billing-hours", 1, 7)
