"""The console's tables (SQLAlchemy Core). Alembic migrations in ``console/migrations`` create them.

Money is stored as integer fen (``*_cents``) and ratios as integer ten-thousandths (``*_e4``) so
sums are exact on SQLite and PostgreSQL alike. Patient names are never stored: the ``assessment``
event carries none, and nothing here has a column for one. Patient and encounter identifiers are
kept as the HIS sent them (the 医保办 must be able to find the stay in the HIS); URLs use the
stay's random ``stay_key`` instead.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def _dip_columns() -> list[Column]:
    """The DIP status of one assessment (also the latest state of a stay)."""
    return [
        Column("catalog", String(200)),
        Column("group_code", String(100)),
        Column("group_name", String(300)),
        Column("group_kind", String(30)),
        Column("estimate", Boolean),
        Column("standard_cents", BigInteger),
        Column("cost_cents", BigInteger),
        Column("order_cents", BigInteger),
        Column("projected_cents", BigInteger),
        Column("ratio_e4", BigInteger),
        Column("band", String(40)),
    ]


def _who_columns() -> list[Column]:
    return [
        Column("department_code", String(100)),
        Column("department_name", String(200)),
        Column("attending_id", String(200)),
        Column("attending_name", String(200)),
    ]


stays = Table(
    "console_stay",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("stay_key", String(32), nullable=False, unique=True),
    Column("patient_id", String(200), nullable=False),
    Column("encounter_id", String(200), nullable=False),  # "" when the caller named no encounter
    Column("encounter_status", String(40)),
    Column("is_open", Boolean, nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_service", String(100)),
    Column("dip_at", DateTime(timezone=True)),  # time of the DIP state below (events may arrive late)
    Column("assessments", Integer, nullable=False),
    Column("findings", Integer, nullable=False),
    Column("risk_cents", BigInteger, nullable=False),
    *_who_columns(),
    *_dip_columns(),
    UniqueConstraint("patient_id", "encounter_id", name="uq_console_stay"),
    Index("ix_console_stay_open_ratio", "is_open", "ratio_e4"),
    Index("ix_console_stay_closed_at", "closed_at"),
)

assessments = Table(
    "console_assessment",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("stay_id", _ID, ForeignKey("console_stay.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),  # dip | audit
    Column("service", String(100), nullable=False),
    Column("hook", String(60)),
    Column("hook_instance", String(100)),
    Column("channel", String(20)),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("encounter_status", String(40)),
    *_who_columns(),
    *_dip_columns(),
    Index("ix_console_assessment_stay_at", "stay_id", "at"),
    Index("ix_console_assessment_at", "at"),
)

imports = Table(
    "console_import",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),  # audit | settle
    Column("label", String(200), nullable=False),
    Column("source", String(1000), nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
    Column("loaded_by", String(100), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("summary", Text),  # JSON
)

findings = Table(
    "console_finding",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("assessment_id", _ID, ForeignKey("console_assessment.id", ondelete="CASCADE")),
    Column("import_id", _ID, ForeignKey("console_import.id", ondelete="CASCADE")),
    Column("stay_id", _ID, ForeignKey("console_stay.id", ondelete="CASCADE")),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("patient_id", String(200)),
    Column("encounter_id", String(200)),
    *_who_columns(),
    Column("rule_id", String(100), nullable=False),
    Column("rule_kind", String(60)),
    Column("batch", String(200)),
    Column("rule_name", String(500)),
    Column("severity", String(10)),
    Column("order_ref", String(200)),
    Column("item_code", String(100)),
    Column("item_name", String(300)),
    Column("amount_cents", BigInteger),
    Column("message", Text),
    Index("ix_console_finding_at", "at"),
    Index("ix_console_finding_rule", "rule_id"),
)

cards = Table(
    "console_card",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("assessment_id", _ID, ForeignKey("console_assessment.id", ondelete="CASCADE"), nullable=False),
    Column("card_uuid", String(256)),
    Column("summary", String(300)),
    Column("indicator", String(20)),
    Index("ix_console_card_uuid", "card_uuid"),
    Index("ix_console_card_assessment", "assessment_id"),
)

rejected_events = Table(
    "console_rejected_event",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("payload", Text, nullable=False),
)

settle_rows = Table(
    "console_settle_row",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("import_id", _ID, ForeignKey("console_import.id", ondelete="CASCADE"), nullable=False),
    Column("table_name", String(40), nullable=False),
    Column("row_no", Integer, nullable=False),
    Column("department", String(200)),
    Column("data", Text, nullable=False),  # JSON object: column → text
    Index("ix_console_settle_row", "import_id", "table_name", "row_no"),
)

users = Table(
    "console_user",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("display_name", String(200)),
    Column("role", String(20), nullable=False),  # ybb | dept_head | readonly
    Column("department_code", String(100)),
    Column("password_hash", String(300)),  # NULL: signs in through the reverse proxy only
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "console_session",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the cookie value
    Column("user_id", _ID, ForeignKey("console_user.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

view_log = Table(
    "console_view_log",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("username", String(100), nullable=False),
    Column("action", String(40), nullable=False),  # view | export | login | logout | import | denied …
    Column("target", String(300), nullable=False),
    Column("remote_addr", String(64)),
    Index("ix_console_view_log_at", "at"),
)
