"""`kumiki directory …` commands (filled in by issue 3)."""
