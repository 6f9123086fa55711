"""The Textual annotation app (``saegold annotate``).  Imported lazily by the CLI."""
