"""Annotator guidelines: the project's Markdown file (setting ``guidelines_path``), or ours."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from saegold.store import settings
from saegold.store.db import Project

from ..safe import inert_line


def builtin() -> str:
    return resources.files(__package__).joinpath("guidelines.md").read_text(encoding="utf-8")


def load(project: Project) -> tuple[str, str | None]:
    """Return (markdown, warning): the project's guidelines, else the built-in ones.

    A relative ``guidelines_path`` is taken relative to the project file.  Control
    characters are made visible line by line, so a guidelines file cannot drive the terminal.
    """
    configured = settings.load(project).guidelines_path
    if not configured:
        return builtin(), None
    path = Path(configured)
    if not path.is_absolute():
        path = project.path.parent / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return builtin(), f"guidelines {path}: cannot read ({exc.__class__.__name__}); showing the built-in ones"
    return "\n".join(inert_line(line) for line in text.splitlines()), None
