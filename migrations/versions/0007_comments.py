"""comments: comments on records with mentions and replies

Revision ID: 0007
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import kumiki.db

revision = '0007'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'comments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('app_id', sa.Integer(), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=False),
        sa.Column('parent_id', sa.Integer(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('user_code', sa.String(length=128), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('mentions', kumiki.db.JSONType, nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('deleted_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['app_id'], ['apps.id'], name=op.f('fk_comments_app_id_apps'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['parent_id'], ['comments.id'], name=op.f('fk_comments_parent_id_comments')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_comments_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_comments')),
    )
    with op.batch_alter_table('comments') as batch_op:
        batch_op.create_index('ix_comments_app_record', ['app_id', 'record_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_table('comments')
