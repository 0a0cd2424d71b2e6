from datetime import datetime, timezone


def utcnow() -> datetime:
    """Naive UTC: every timestamp column stores UTC without tz, on SQLite and PostgreSQL alike."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
