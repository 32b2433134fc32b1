"""console tables: stays, assessments, findings, cards, imports, users, sessions, view log

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_import",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.String(length=100), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "console_rejected_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "console_stay",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("stay_key", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=False),
        sa.Column("encounter_id", sa.String(length=200), nullable=False),
        sa.Column("encounter_status", sa.String(length=40), nullable=True),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_service", sa.String(length=100), nullable=True),
        sa.Column("dip_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assessments", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("risk_cents", sa.BigInteger(), nullable=False),
        sa.Column("department_code", sa.String(length=100), nullable=True),
        sa.Column("department_name", sa.String(length=200), nullable=True),
        sa.Column("attending_id", sa.String(length=200), nullable=True),
        sa.Column("attending_name", sa.String(length=200), nullable=True),
        sa.Column("catalog", sa.String(length=200), nullable=True),
        sa.Column("group_code", sa.String(length=100), nullable=True),
        sa.Column("group_name", sa.String(length=300), nullable=True),
        sa.Column("group_kind", sa.String(length=30), nullable=True),
        sa.Column("estimate", sa.Boolean(), nullable=True),
        sa.Column("standard_cents", sa.BigInteger(), nullable=True),
        sa.Column("cost_cents", sa.BigInteger(), nullable=True),
        sa.Column("order_cents", sa.BigInteger(), nullable=True),
        sa.Column("projected_cents", sa.BigInteger(), nullable=True),
        sa.Column("ratio_e4", sa.BigInteger(), nullable=True),
        sa.Column("band", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_id", "encounter_id", name="uq_console_stay"),
        sa.UniqueConstraint("stay_key"),
    )
    with op.batch_alter_table("console_stay", schema=None) as batch_op:
        batch_op.create_index("ix_console_stay_closed_at", ["closed_at"], unique=False)
        batch_op.create_index("ix_console_stay_open_ratio", ["is_open", "ratio_e4"], unique=False)

    op.create_table(
        "console_user",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("department_code", sa.String(length=100), nullable=True),
        sa.Column("password_hash", sa.String(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "console_view_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_view_log", schema=None) as batch_op:
        batch_op.create_index("ix_console_view_log_at", ["at"], unique=False)

    op.create_table(
        "console_assessment",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("stay_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("service", sa.String(length=100), nullable=False),
        sa.Column("hook", sa.String(length=60), nullable=True),
        sa.Column("hook_instance", sa.String(length=100), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("encounter_status", sa.String(length=40), nullable=True),
        sa.Column("department_code", sa.String(length=100), nullable=True),
        sa.Column("department_name", sa.String(length=200), nullable=True),
        sa.Column("attending_id", sa.String(length=200), nullable=True),
        sa.Column("attending_name", sa.String(length=200), nullable=True),
        sa.Column("catalog", sa.String(length=200), nullable=True),
        sa.Column("group_code", sa.String(length=100), nullable=True),
        sa.Column("group_name", sa.String(length=300), nullable=True),
        sa.Column("group_kind", sa.String(length=30), nullable=True),
        sa.Column("estimate", sa.Boolean(), nullable=True),
        sa.Column("standard_cents", sa.BigInteger(), nullable=True),
        sa.Column("cost_cents", sa.BigInteger(), nullable=True),
        sa.Column("order_cents", sa.BigInteger(), nullable=True),
        sa.Column("projected_cents", sa.BigInteger(), nullable=True),
        sa.Column("ratio_e4", sa.BigInteger(), nullable=True),
        sa.Column("band", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["stay_id"], ["console_stay.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("console_assessment", schema=None) as batch_op:
        batch_op.create_index("ix_console_assessment_at", ["at"], unique=False)
        batch_op.create_index("ix_console_assessment_stay_at", ["stay_id", "at"], unique=False)

    op.create_table(
        "console_session",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["console_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "console_settle_row",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("import_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("table_name", sa.String(length=40), nullable=False),
        sa.Column("row_no", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=200), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["console_import.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_settle_row", schema=None) as batch_op:
        batch_op.create_index("ix_console_settle_row", ["import_id", "table_name", "row_no"], unique=False)

    op.create_table(
        "console_card",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("assessment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_uuid", sa.String(length=256), nullable=True),
        sa.Column("summary", sa.String(length=300), nullable=True),
        sa.Column("indicator", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["assessment_id"], ["console_assessment.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_card", schema=None) as batch_op:
        batch_op.create_index("ix_console_card_assessment", ["assessment_id"], unique=False)
        batch_op.create_index("ix_console_card_uuid", ["card_uuid"], unique=False)

    op.create_table(
        "console_finding",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("assessment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("import_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("stay_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("patient_id", sa.String(length=200), nullable=True),
        sa.Column("encounter_id", sa.String(length=200), nullable=True),
        sa.Column("department_code", sa.String(length=100), nullable=True),
        sa.Column("department_name", sa.String(length=200), nullable=True),
        sa.Column("attending_id", sa.String(length=200), nullable=True),
        sa.Column("attending_name", sa.String(length=200), nullable=True),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("rule_kind", sa.String(length=60), nullable=True),
        sa.Column("batch", sa.String(length=200), nullable=True),
        sa.Column("rule_name", sa.String(length=500), nullable=True),
        sa.Column("severity", sa.String(length=10), nullable=True),
        sa.Column("order_ref", sa.String(length=200), nullable=True),
        sa.Column("item_code", sa.String(length=100), nullable=True),
        sa.Column("item_name", sa.String(length=300), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["assessment_id"], ["console_assessment.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["import_id"], ["console_import.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stay_id"], ["console_stay.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_finding", schema=None) as batch_op:
        batch_op.create_index("ix_console_finding_at", ["at"], unique=False)
        batch_op.create_index("ix_console_finding_rule", ["rule_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_finding", schema=None) as batch_op:
        batch_op.drop_index("ix_console_finding_rule")
        batch_op.drop_index("ix_console_finding_at")

    op.drop_table("console_finding")
    with op.batch_alter_table("console_card", schema=None) as batch_op:
        batch_op.drop_index("ix_console_card_uuid")
        batch_op.drop_index("ix_console_card_assessment")

    op.drop_table("console_card")
    with op.batch_alter_table("console_settle_row", schema=None) as batch_op:
        batch_op.drop_index("ix_console_settle_row")

    op.drop_table("console_settle_row")
    op.drop_table("console_session")
    with op.batch_alter_table("console_assessment", schema=None) as batch_op:
        batch_op.drop_index("ix_console_assessment_stay_at")
        batch_op.drop_index("ix_console_assessment_at")

    op.drop_table("console_assessment")
    with op.batch_alter_table("console_view_log", schema=None) as batch_op:
        batch_op.drop_index("ix_console_view_log_at")

    op.drop_table("console_view_log")
    op.drop_table("console_user")
    with op.batch_alter_table("console_stay", schema=None) as batch_op:
        batch_op.drop_index("ix_console_stay_open_ratio")
        batch_op.drop_index("ix_console_stay_closed_at")

    op.drop_table("console_stay")
    op.drop_table("console_rejected_event")
    op.drop_table("console_import")
