"""The feature screen's panes: each a small widget that renders itself from the session.

A pane knows what it shows (:meth:`Pane.build`, from :mod:`tui.app.render`) and redraws
only when that changed; :meth:`Pane.sync` is all the screen calls, for every pane at once,
whenever the session says it changed (:meth:`tui.app.session.Session.subscribe`).  So no
action has to remember which part of the screen it touched.

A redraw that keeps the pane's height only repaints it (``Static.update(layout=False)``):
Textual then skips the whole screen's layout, which is most of a keypress's cost.
"""
from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.widgets import Static

from . import render
from .session import Session


class Pane(Static):
    """A ``Static`` whose content is made from the session, redrawn only when it changed."""

    FITS_WIDTH = False     # the content is made for the pane's width: made again on a resize

    def __init__(self, session: Session, **kw: Any):
        super().__init__(**kw)
        self.session = session
        self._key: object = None           # what the content was made from (or the content itself)
        self._lines: int | None = None     # its height at the width it was drawn for
        self._width: int | None = None
        self._content: RenderableType | None = None

    def build(self) -> RenderableType:
        raise NotImplementedError

    def key(self, content: RenderableType) -> object:
        """What decides whether the content changed: by default the content itself (a Rich
        ``Text`` compares by its text and styles)."""
        return content

    def height_of(self, content: RenderableType, width: int) -> int | None:
        """The content's height at ``width`` (None: unknown, lay the screen out again)."""
        height = self.styles.height
        if height is not None and not height.is_auto:
            return 0        # the stylesheet sets the height, whatever the content
        if width <= 0:
            return None
        if isinstance(content, Text):
            return len(content.wrap(_CONSOLE, width))
        return None

    def sync(self) -> None:
        content = self.build()
        key = self.key(content)
        if key == self._key and self._key is not None:
            return
        self._key, self._content = key, content
        width = self.content_size.width
        lines = self.height_of(content, width)
        # The same height at the same width: a repaint, no layout of the screen.
        same = lines is not None and lines == self._lines and width == self._width
        self._lines, self._width = lines, width
        self.update(content, layout=not same)

    def on_resize(self) -> None:
        if self.FITS_WIDTH and self.is_attached:
            self.sync()             # made again for the new width
        elif self._content is not None:   # laid out anew for the new size: measure there
            self._width = self.content_size.width
            self._lines = self.height_of(self._content, self._width)


_CONSOLE = render._CONSOLE     # only measures: never prints


class Same:
    """Equal only to a reference to the same object (a feature opened again is a new view)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.obj is self.obj

    __hash__ = None  # type: ignore[assignment]


class HeaderPane(Pane):
    """One line: the feature, the annotator's progress, the source."""

    def build(self) -> RenderableType:
        return render.header(self.session)

    def key(self, content: Any) -> object:
        return (content.fixed, content.name, content.source)

    def height_of(self, content: RenderableType, width: int) -> int | None:
        return 1          # CSS: height 1; the header fits itself to the width


class MachinePane(Pane):
    """The machine's own answer (predicted category): hidden until revealed."""

    def build(self) -> RenderableType:
        return render.machine(self.session)


class OthersPane(Pane):
    """A lead's review: what each annotator said about the feature."""

    def build(self) -> RenderableType:
        return render.others(self.session) if self.session.lead else Text()


class CandidatesPane(Pane):
    """The candidate labels, their verdicts, and (revealed) their methods and scores."""

    FITS_WIDTH = True

    def build(self) -> RenderableType:
        return render.candidates(self.session, self.content_size.width or None)


class JudgmentPane(Pane):
    """The annotator's judgment of the feature so far."""

    def build(self) -> RenderableType:
        return render.judgment(self.session)


class ExamplesPane(Pane):
    """The top activating examples (fitted to the pane, or all of them under "more")."""

    def __init__(self, session: Session, *, full: bool = False, **kw: Any):
        super().__init__(session, **kw)
        self.full = full

    def build(self) -> RenderableType:
        v = self.session.view
        return Text() if v is None else render.Examples(v, full=self.full)

    def key(self, content: RenderableType) -> object:
        return (Same(self.session.view), self.full)


class QuantilesPane(Pane):
    """Examples across the activation range, bin by bin (under "more")."""

    def build(self) -> RenderableType:
        v = self.session.view
        return Text() if v is None else render.QuantileExamples(v, render.top_scale(v))

    def key(self, content: RenderableType) -> object:
        return Same(self.session.view)


class EvidencePane(Pane):
    """The output evidence: fitted beside the examples from ``fit_from`` columns, compact
    below them, or in full under "more"."""

    def __init__(self, session: Session, *, full: bool = False, fit_from: int = 0, **kw: Any):
        super().__init__(session, **kw)
        self.full, self.fit_from = full, fit_from

    def _fit(self) -> bool:
        return not self.full and self.app.size.width >= self.fit_from

    def height_of(self, content: RenderableType, width: int) -> int | None:
        fixed = super().height_of(content, width)
        if fixed is not None or self.full or width <= 0:
            return fixed
        # below the examples (narrow): a few compact lines, cheap to count
        return len(_CONSOLE.render_lines(content, _CONSOLE.options.update(width=width, height=None), pad=False))

    def build(self) -> RenderableType:
        v = self.session.view
        return Text() if v is None else render.Evidence(v, full=self.full, fit=self._fit())

    def key(self, content: RenderableType) -> object:
        return (Same(self.session.view), self.full, self._fit())


class StatusPane(Pane):
    """The status line: what the last key did (the screen's view state, not the session's:
    :attr:`tui.app.screen.FeatureScreen.status` shows itself here)."""

    def __init__(self, session: Session, text: Text, **kw: Any):
        super().__init__(session, **kw)
        self.text = text

    def build(self) -> RenderableType:
        return self.text

    def show(self, text: Text) -> None:
        self.text = text
        self.sync()
