"""Placeholder: filled in by the security work of issue 3."""
