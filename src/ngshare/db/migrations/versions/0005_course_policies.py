"""Course policies: lifecycle, schedule, deadline, late window, limit, solutions,
per-student extensions, and each submission's deadline and on-time flag.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import ngshare.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("student", sa.String(length=255), nullable=False),
        sa.Column("due_at", ngshare.db.types.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", ngshare.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("assignment_id", "student"),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), server_default="released", nullable=False)
        )
        batch_op.add_column(sa.Column("visible_at", ngshare.db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("due_at", ngshare.db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("late_window_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_submissions", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("solutions", sa.String(length=16), server_default="none", nullable=False)
        )
        batch_op.add_column(sa.Column("solutions_fileset_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_assignments_solutions", "filesets", ["solutions_fileset_id"], ["id"]
        )

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline", ngshare.db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("on_time", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("on_time")
        batch_op.drop_column("deadline")

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_assignments_solutions", type_="foreignkey")
        batch_op.drop_column("solutions_fileset_id")
        batch_op.drop_column("solutions")
        batch_op.drop_column("max_submissions")
        batch_op.drop_column("late_window_seconds")
        batch_op.drop_column("timezone")
        batch_op.drop_column("due_at")
        batch_op.drop_column("visible_at")
        batch_op.drop_column("state")

    op.drop_table("extensions")
