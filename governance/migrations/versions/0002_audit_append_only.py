"""audit events are append-only in the database too

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 22:45:00

The hash chain detects an edited, deleted or reordered event after the fact; these
triggers refuse UPDATE and DELETE on `auditevent` up front, so no code path (or
slip at a SQL prompt) can change history. Someone with the rights to drop or
disable a trigger can still tamper, and `canon audit verify` then names the event.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit events are append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION auditevent_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER auditevent_append_only BEFORE UPDATE OR DELETE ON auditevent "
            "FOR EACH ROW EXECUTE FUNCTION auditevent_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER auditevent_no_{event.lower()} BEFORE {event} ON auditevent "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS auditevent_append_only ON auditevent")
        op.execute("DROP FUNCTION IF EXISTS auditevent_append_only()")
        return
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS auditevent_no_{event}")
