"""The audit log (filled in by the audit work of issue 3)."""
from flask_smorest import Blueprint

PREFIX = ""
blp = Blueprint("audit", __name__, description="監査ログ / audit log")
