"""app_tokens: API tokens bound to one app with their own scopes

Revision ID: 0006
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import kumiki.db

revision = '0006'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'app_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('app_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('scopes', kumiki.db.JSONType, nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['app_id'], ['apps.id'], name=op.f('fk_app_tokens_app_id_apps'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_app_tokens_created_by_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_app_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_app_tokens_token_hash')),
    )
    with op.batch_alter_table('app_tokens') as batch_op:
        batch_op.create_index('ix_app_tokens_app_id', ['app_id'], unique=False)


def downgrade() -> None:
    op.drop_table('app_tokens')
