"""Placeholder: filled in by the directory work of issue 3."""
