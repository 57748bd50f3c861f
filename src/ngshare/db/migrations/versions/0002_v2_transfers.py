"""v2 transfers: md5 computed lazily, manifest digests, idempotent submissions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.alter_column("md5", existing_type=sa.VARCHAR(length=32), nullable=True)

    with op.batch_alter_table("filesets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_filesets_digest"), ["digest"], unique=False)

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_key", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            "uq_submission_key", ["assignment_id", "student", "client_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_submission_key", type_="unique")
        batch_op.drop_column("client_key")

    with op.batch_alter_table("filesets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filesets_digest"))
        batch_op.drop_column("digest")

    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.alter_column("md5", existing_type=sa.VARCHAR(length=32), nullable=False)
