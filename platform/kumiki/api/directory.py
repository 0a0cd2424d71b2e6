"""Organizations, groups and memberships (filled in by the directory work of issue 3)."""
from flask_smorest import Blueprint

PREFIX = ""
blp = Blueprint("directory", __name__, description="組織・グループ / organizations and groups")
