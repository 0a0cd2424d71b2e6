"""Placeholder: filled in by the audit work of issue 3."""
