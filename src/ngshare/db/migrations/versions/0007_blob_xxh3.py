"""Blobs keep the xxh3-128 that downloads are checked with.

A streamed v2 upload computes it beside the sha256 it verifies; downloads
name it in `Repr-Digest` and clients verify it instead of re-hashing with
sha256 (`ngshare.checksums`). Blobs stored before this revision, or through
bundles and v1, have none: their downloads are checked with sha256.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("xxh3", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_column("xxh3")
