"""baseline: the schema before migrations

Revision ID: 0001
Revises:
Create Date: 2026-11-22 22:23:51

The tables as `SQLModel.metadata.create_all` made them before migrations existed;
`governance.db.upgrade` stamps such a database at this revision instead of re-creating it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answerlog",
        sa.Column("id", sqltypes.AutoString(length=36), nullable=False),
        sa.Column("at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("key_name", sqltypes.AutoString(), nullable=True),
        sa.Column("channel", sqltypes.AutoString(), nullable=False),
        sa.Column("audience", sa.Enum("patient", "staff", name="audience"), nullable=False),
        sa.Column("question_deid", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("abstained", sa.Boolean(), nullable=False),
        sa.Column("abstain_reason", sqltypes.AutoString(), nullable=True),
        sa.Column("escalate", sa.Boolean(), nullable=False),
        sa.Column("grounded", sa.Boolean(), nullable=False),
        sa.Column("support", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "apikey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("secret_hash", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqltypes.AutoString(), nullable=False),
        sa.Column("scopes", sqltypes.AutoString(), nullable=False),
        sa.Column("audience_pin", sa.Enum("patient", "staff", name="audience"), nullable=True),
        sa.Column("service_lines_pin", sqltypes.AutoString(), nullable=True),
        sa.Column("created_by", sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    op.create_table(
        "article",
        sa.Column("title", sqltypes.AutoString(), nullable=False),
        sa.Column("owner", sqltypes.AutoString(), nullable=False),
        sa.Column("service_line", sqltypes.AutoString(), nullable=False),
        sa.Column("audience", sa.Enum("patient", "staff", name="audience"), nullable=False),
        sa.Column("clinical", sa.Boolean(), nullable=False),
        sa.Column("review_every_days", sa.Integer(), nullable=False),
        sa.Column("last_reviewed", sa.Date(), nullable=True),
        sa.Column("source_url", sqltypes.AutoString(), nullable=True),
        sa.Column("id", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("source_path", sqltypes.AutoString(), nullable=False),
        sa.Column("published_version_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_article_published_version_id"), "article", ["published_version_id"], unique=False
    )
    op.create_index(op.f("ix_article_service_line"), "article", ["service_line"], unique=False)
    op.create_table(
        "auditevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqltypes.AutoString(), nullable=False),
        sa.Column("action", sqltypes.AutoString(), nullable=False),
        sa.Column("article_id", sqltypes.AutoString(), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("from_status", sqltypes.AutoString(), nullable=True),
        sa.Column("to_status", sqltypes.AutoString(), nullable=True),
        sa.Column("reason", sqltypes.AutoString(), nullable=True),
        sa.Column("prev_hash", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    op.create_table(
        "embeddingcache",
        sa.Column("text_hash", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("model", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("text_hash", "model"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("audit_head", sqltypes.AutoString(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "articleversion",
        sa.Column("title", sqltypes.AutoString(), nullable=False),
        sa.Column("owner", sqltypes.AutoString(), nullable=False),
        sa.Column("service_line", sqltypes.AutoString(), nullable=False),
        sa.Column("audience", sa.Enum("patient", "staff", name="audience"), nullable=False),
        sa.Column("clinical", sa.Boolean(), nullable=False),
        sa.Column("review_every_days", sa.Integer(), nullable=False),
        sa.Column("last_reviewed", sa.Date(), nullable=True),
        sa.Column("source_url", sqltypes.AutoString(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "in_review",
                "approved",
                "published",
                "superseded",
                "retired",
                name="status",
            ),
            nullable=False,
        ),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_hash", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("source_path", sqltypes.AutoString(), nullable=False),
        sa.Column("author", sqltypes.AutoString(), nullable=False),
        sa.Column("reviewer", sqltypes.AutoString(), nullable=True),
        sa.Column("review_comment", sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["article.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("article_id", "number"),
    )
    op.create_index(
        op.f("ix_articleversion_article_id"), "articleversion", ["article_id"], unique=False
    )
    op.create_index(
        op.f("ix_articleversion_service_line"), "articleversion", ["service_line"], unique=False
    )
    op.create_index(
        op.f("ix_articleversion_source_hash"), "articleversion", ["source_hash"], unique=False
    )
    op.create_index(op.f("ix_articleversion_status"), "articleversion", ["status"], unique=False)
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sqltypes.AutoString(length=36), nullable=False),
        sa.Column(
            "rating",
            sa.Enum("helpful", "wrong", "outdated", "unclear", name="rating"),
            nullable=False,
        ),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("by", sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["answerlog.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_feedback_answer_id"), "feedback", ["answer_id"], unique=False)
    op.create_table(
        "answercitation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sqltypes.AutoString(length=36), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("article_id", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("section", sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["answerlog.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["articleversion.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_answercitation_answer_id"), "answercitation", ["answer_id"], unique=False
    )
    op.create_index(
        op.f("ix_answercitation_article_id"), "answercitation", ["article_id"], unique=False
    )
    op.create_index(
        op.f("ix_answercitation_version_id"), "answercitation", ["version_id"], unique=False
    )
    op.create_table(
        "chunk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("section", sqltypes.AutoString(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("point_id", sqltypes.AutoString(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["articleversion.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_chunk_point_id"), "chunk", ["point_id"], unique=False)
    op.create_index(op.f("ix_chunk_version_id"), "chunk", ["version_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_chunk_version_id"), table_name="chunk")
    op.drop_index(op.f("ix_chunk_point_id"), table_name="chunk")
    op.drop_table("chunk")
    op.drop_index(op.f("ix_answercitation_version_id"), table_name="answercitation")
    op.drop_index(op.f("ix_answercitation_article_id"), table_name="answercitation")
    op.drop_index(op.f("ix_answercitation_answer_id"), table_name="answercitation")
    op.drop_table("answercitation")
    op.drop_index(op.f("ix_feedback_answer_id"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_index(op.f("ix_articleversion_status"), table_name="articleversion")
    op.drop_index(op.f("ix_articleversion_source_hash"), table_name="articleversion")
    op.drop_index(op.f("ix_articleversion_service_line"), table_name="articleversion")
    op.drop_index(op.f("ix_articleversion_article_id"), table_name="articleversion")
    op.drop_table("articleversion")
    op.drop_table("ledger")
    op.drop_table("embeddingcache")
    op.drop_table("auditevent")
    op.drop_index(op.f("ix_article_service_line"), table_name="article")
    op.drop_index(op.f("ix_article_published_version_id"), table_name="article")
    op.drop_table("article")
    op.drop_table("apikey")
    op.drop_table("answerlog")
    for name in ("audience", "status", "rating"):  # PostgreSQL keeps enum types apart
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
