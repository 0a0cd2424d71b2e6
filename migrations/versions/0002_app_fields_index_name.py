"""app_fields.index_name: which record-table columns carry a plain index

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('app_fields') as batch_op:
        batch_op.add_column(sa.Column('index_name', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('app_fields') as batch_op:
        batch_op.drop_column('index_name')
