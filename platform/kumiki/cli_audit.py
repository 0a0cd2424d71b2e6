"""`kumiki audit …` commands (filled in by issue 3)."""
