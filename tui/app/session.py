"""The annotator's working state, independent of the screen: queue position, the feature
on screen, time spent, and every judgment written as an append-only event.

Each action is one event appended in its own short transaction; a method returns only
after the write committed, so whatever the screen reports as saved is on disk.
"""
from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from saegold.store import feature_view as fv
from saegold.store import judgments as sj
from saegold.store import queue as sq
from saegold.store import settings
from saegold.store.db import BUSY_TIMEOUT_MS, Project
from saegold.store.errors import Locked, StoreError

from .model import FeatureView, find_feature, load_feature

IDLE_CAP_S = 120.0  # a longer pause counts as this much time on the feature
LOCK_WAIT_S = BUSY_TIMEOUT_MS / 1000  # how long one write waits for another process's lock in all
RENEW_EVERY_S = 60.0  # renew the leases at least this often while the annotator works
# Top up (to store.queue.LOOKAHEAD) once only this many features not judged yet are left from
# the one on screen on: one choice of new features per few features, as each costs a query
# over who holds what (a few to tens of ms on 100,000-262,144 features), in a background
# thread.  Two, not one: the top-up then has a whole keypress to finish before the queue runs
# dry (at one, a quick `n` after `n` waited for it: every fourth press paid a whole top-up).
REFILL_AT = 2


@dataclass
class Saved:
    """What the last action wrote (for the status line)."""

    event: dict[str, Any]
    description: str


class QueueFinished(Exception):
    """There is no further feature to judge."""


F = TypeVar("F", bound=Callable[..., Any])


def changes(method: F) -> F:
    """A method that changes what the session shows: its subscribers hear of it once it
    returned (or raised: a queue that ran dry may still have grown)."""
    @functools.wraps(method)
    def wrapper(self: Session, *args: Any, **kw: Any) -> Any:
        try:
            return method(self, *args, **kw)
        finally:
            self._changed()
    return wrapper  # type: ignore[return-value]


class Session:
    """One annotator (or lead) working through their queue."""

    def __init__(self, project: Project, annotator: str, *, lead: bool = False,
                 login: str | None = None, clock: Callable[[], float] = time.monotonic):
        self.project, self.annotator, self.lead = project, annotator, lead
        self.login = login or sj.login_user()
        self.clock = clock
        sj.ensure_annotator(project, annotator, "lead" if lead else "annotator")
        self.blind = settings.load(project).blind and not lead
        self.order: list[int] = []
        self.states: dict[int, sq.FeatureState] = {}
        self._exhausted = False  # the last top-up could not fill the look-ahead
        self._refill_lock = threading.Lock()  # one top-up at a time
        # Leases are renewed while the annotator works; idle past the limit they expire.
        self._renew_every = min(RENEW_EVERY_S, sq.idle_limit(project).total_seconds() / 4)
        self._renewed = clock()
        self.pos: int | None = None
        self._load_queue()
        self.done_at_start = self.done_count
        self.started_at = clock()
        self.view: FeatureView | None = None
        self.state: sq.FeatureState = sq.FeatureState(None)
        self.selected = 0
        self.pending_confidence: int | None = None
        self._spent = 0.0
        self._touched = clock()
        self.last: Saved | None = None
        self.saved_count = 0  # events written in this session
        # Set (from another thread) to give up a write that waits for another process's lock:
        # it then raises instead of committing later, unseen.  Takes effect between two waits
        # of the connection's busy timeout (the app's writer thread waits in short slices).
        self.abandon = threading.Event()
        self.lock_wait_s = LOCK_WAIT_S
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every change to what the session shows (the feature,
        the judgment, the selection, the queue), on the thread that made it (a screen's
        writer thread included): the screen redraws from that, no action has to ask."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # -- queue -----------------------------------------------------------------------------
    # A non-lead's queue is what the store assigned them: the features they judged, and a few
    # leases ahead (store.queue.LOOKAHEAD), kept by store.queue.top_up: at the start, in the
    # background as they work, and at the end of the queue; released by close() on quit.

    def _load_queue(self) -> None:
        if self.lead:
            self.order = sq.disagreements(self.project)
            self.states = sq.states(self.project, self.annotator, self.order, lead=True)
            return
        self.order = sq.queue(self.project, self.annotator)
        self.states = sq.states(self.project, self.annotator)
        self._refill()

    def _refill(self) -> bool:
        """Keep the leases now and take in what was assigned; were there new features?  (The
        queue ran dry, or the session starts.)  A top-up a background worker is running at
        this moment is waited for first.  A lead's review queue takes in disagreements that
        arose since it was built."""
        if self.lead:
            known = set(self.order)
            fresh = [f for f in sq.disagreements(self.project) if f not in known]
            self.states.update(sq.states(self.project, self.annotator, fresh, lead=True))
            self.order += fresh
            return bool(fresh)
        with self._refill_lock:
            if self._absorb_grown():
                return True
            self._keep_leases()
            grown = self._absorb_grown()
            self._exhausted = len(self.lease_keep()) < sq.LOOKAHEAD
            return grown

    def _keep_leases(self) -> int:
        keep = self.lease_keep()
        # Features passed over without a judgment go back to the pool, and are not handed
        # to this session again (it has them behind, where `back` reaches them).
        at = -1 if self.pos is None else self.pos
        passed = [f for f in self.order[:at] if not self.states[f].started]
        n = sq.top_up(self.project, self.annotator, keep, avoid=passed)
        self._renewed = self.clock()
        return n

    def lease_keep(self) -> list[int]:
        """The features not judged yet that the annotator works on next: the one on screen
        and those after it in the queue, up to :data:`store.queue.LOOKAHEAD`."""
        start = 0 if self.pos is None else self.pos
        ahead = [f for f in self.order[start:] if not self.states[f].started]
        return ahead[:sq.LOOKAHEAD]

    def assign_batch(self) -> int:
        """Keep the leases (for a thread worker: uses that thread's own connection)."""
        with self._refill_lock:
            return self._keep_leases()

    def _absorb_grown(self) -> bool:
        """Take in features the database assigns the annotator beyond ``order``; were there
        any?  Features ahead not judged yet and no longer assigned (released, taken by
        others) are dropped; those behind stay, so `back` still reaches them."""
        queue = sq.queue(self.project, self.annotator)
        held = set(queue)
        at = -1 if self.pos is None else self.pos
        current = self.order[at] if at >= 0 else None
        kept = [f for i, f in enumerate(self.order) if i <= at or f in held or self.states[f].started]
        known = set(kept)
        new = [f for f in queue if f not in known]
        if not new and len(kept) == len(self.order):
            return False
        if new:
            self.states.update(sq.states(self.project, self.annotator, new))
        self.order = kept + new
        if current is not None:
            self.pos = self.order.index(current)
        return bool(new)

    @property
    def wants_refill(self) -> bool:
        """Time for a top-up in the background: few leases left ahead (:data:`REFILL_AT`), or
        the leases are due for renewal (so an annotator at work never loses them)."""
        if self.lead:
            return False
        if self.clock() - self._renewed >= self._renew_every:
            return True
        return not self._exhausted and len(self.lease_keep()) <= REFILL_AT

    @changes
    def absorb_assignments(self, n_new: int) -> None:
        """Take in a top-up that :func:`store.queue.top_up` made (from another thread)."""
        self._absorb_grown()
        self._exhausted = len(self.lease_keep()) < sq.LOOKAHEAD

    def close(self) -> None:
        """Release the annotator's leases (quit, hang-up): what they judged stays theirs."""
        if not self.lead:
            sq.release(self.project, self.annotator)

    @property
    def done_count(self) -> int:
        return sum(1 for f in self.order if self.states[f].done)

    @property
    def skipped_count(self) -> int:
        return sum(1 for f in self.order if self.states[f].skipped)

    @property
    def todo_count(self) -> int:
        return sum(1 for f in self.order if not (self.states[f].done or self.states[f].skipped))

    @property
    def assigned_count(self) -> int:
        return len(self.order)

    def rate_per_hour(self) -> float | None:
        """Features finished per hour in this session (None during the first minute)."""
        hours = (self.clock() - self.started_at) / 3600
        return None if hours < 1 / 60 else (self.done_count - self.done_at_start) / hours

    def _open(self, feature_id: int, pos: int | None) -> None:
        self._flush_time()
        self.pos = pos
        self.view = load_feature(self.project, feature_id, self.annotator)
        self.state = sq.feature_state(self.project, feature_id, self.annotator,
                                      self.view.candidate_uuids, lead=self.lead)
        self.states[feature_id] = self.state
        self._spent = self.state.judgment.seconds_spent if self.state.judgment else 0.0
        self._touched = self.clock()
        self.pending_confidence = None
        self.selected = self._first_unjudged()

    @changes
    def start(self) -> None:
        """Open the first feature still to do (or the last one when all are done)."""
        for i, fid in enumerate(self.order):
            st = self.states[fid]
            if not (st.done or st.skipped):
                self._open(fid, i)
                return
        if self._refill():
            self.start()
            return
        if not self.order:
            raise QueueFinished(self._why_empty())
        self._open(self.order[-1], len(self.order) - 1)

    def _why_empty(self) -> str:
        if self.lead:
            return "no disagreements to review: no feature has two annotators who disagree"
        if not fv.any_top_examples(self.project):
            return "no features with examples in this project yet (run `saegold score` or `saegold import`)"
        overlap = settings.load(self.project).overlap
        minutes = sq.idle_limit(self.project).total_seconds() / 60
        return (f"nothing left to assign to {self.annotator}: every feature is judged by or held by "
                f"{overlap} annotator(s) (project setting overlap); a hold idle for {minutes:g} min "
                f"returns to the pool (`saegold queue` lists them)")

    @changes
    def next(self) -> None:
        """Go to the next feature in the queue that is neither done nor skipped."""
        start = -1 if self.pos is None else self.pos
        while True:
            for i in range(start + 1, len(self.order)):
                st = self.states[self.order[i]]
                if not (st.done or st.skipped):
                    self._open(self.order[i], i)
                    return
            start = len(self.order) - 1
            if not self._refill():
                raise QueueFinished("the end of your queue: every assigned feature is done or skipped")

    @changes
    def previous(self) -> None:
        if self.pos is None:
            if self.order:
                self._open(self.order[-1], len(self.order) - 1)
            return
        if self.pos == 0:
            raise QueueFinished("this is the first feature of your queue")
        self._open(self.order[self.pos - 1], self.pos - 1)

    @changes
    def jump(self, idx: int) -> None:
        """Open the feature with index ``idx`` (in the current source when it has one)."""
        fid = find_feature(self.project, idx, self.view.source if self.view else None)
        if fid is None:
            raise LookupError(f"no feature with index {idx} in this project")
        self._open(fid, self.order.index(fid) if fid in self.order else None)

    # -- time --------------------------------------------------------------------------
    def _flush_time(self) -> None:
        t = self.clock()
        self._spent += min(max(t - self._touched, 0.0), IDLE_CAP_S)
        self._touched = t

    def seconds_spent(self) -> float:
        self._flush_time()
        return round(self._spent, 3)

    # -- writing -----------------------------------------------------------------------
    def _kind(self, kind: str) -> str:
        return sj.as_lead(kind) if self.lead else kind

    def _write(self, kind: str, description: str, **fields: Any) -> Saved:
        assert self.view is not None
        fid = self.view.feature_id
        event = sj.make_event(self.annotator, fid, self._kind(kind),
                              login=self.login, seconds_spent=self.seconds_spent(), **fields)
        # The first event on a feature of the queue ends its lease, in the same transaction.
        self._append(event, hold=not (self.lead or self.state.judgment is not None or fid not in self.order))
        self.saved_count += 1
        self._refresh_state()
        self.last = Saved(event, description)
        return self.last

    def _append(self, event: dict[str, Any], *, hold: bool = False) -> None:
        """Append one event, waiting up to ``lock_wait_s`` for another process's write lock
        (in slices of the connection's busy timeout) unless ``abandon`` is set meanwhile.
        ``hold``: in the same transaction, end the annotator's lease on the feature
        (:func:`store.queue.hold`; refused when it went to others meanwhile)."""
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                if hold:
                    with self.project.write():
                        sq.hold(self.project, self.annotator, event["feature_id"])
                        sj.append(self.project, event)
                else:
                    sj.append(self.project, event)
                return
            except Locked:
                if self.abandon.is_set():
                    raise StoreError("given up: you quit while the project was locked by another "
                                     "process") from None
                if time.monotonic() >= deadline:
                    raise

    def _refresh_state(self) -> None:
        assert self.view is not None
        self.state = sq.feature_state(self.project, self.view.feature_id, self.annotator,
                                      self.view.candidate_uuids, lead=self.lead)
        self.states[self.view.feature_id] = self.state

    @property
    def judgment(self) -> sj.FeatureJudgment | None:
        return self.state.judgment

    @property
    def revealed(self) -> bool:
        """Blind mode hides the machine's view until this feature is done."""
        return not self.blind or self.state.done

    @changes
    def set_tier(self, tier: str) -> Saved:
        conf = self.pending_confidence
        if conf is None and self.judgment is not None and self.judgment.tier is not None:
            conf = self.judgment.confidence
        self.pending_confidence = None
        return self._write("tier", f"tier {tier}" + (f", confidence {conf}" if conf else ""),
                           value=tier, confidence=conf)

    @changes
    def set_confidence(self, confidence: int) -> Saved | None:
        """Re-save the tier with this confidence; before a tier exists, remember it."""
        if self.judgment is None or self.judgment.tier is None:
            self.pending_confidence = confidence
            return None
        return self._write("tier", f"tier {self.judgment.tier}, confidence {confidence}",
                           value=self.judgment.tier, confidence=confidence)

    @changes
    def select(self, step: int) -> None:
        if self.view and self.view.candidates:
            self.selected = (self.selected + step) % len(self.view.candidates)

    @changes
    def select_letter(self, letter: str) -> bool:
        if self.view:
            for i, c in enumerate(self.view.candidates):
                if c.letter == letter.upper():
                    self.selected = i
                    return True
        return False

    def _first_unjudged(self, after: int = -1) -> int:
        if not self.view or not self.view.candidates:
            return 0
        verdicts = self.judgment.verdicts if self.judgment else {}
        n = len(self.view.candidates)
        for k in range(1, n + 1):
            i = (after + k) % n
            if self.view.candidates[i].uuid not in verdicts:
                return i
        return min(max(after, 0), n - 1)

    def selected_candidate(self):
        if not self.view or not self.view.candidates:
            return None
        return self.view.candidates[self.selected]

    @changes
    def verdict(self, value: str) -> Saved | None:
        """Judge the selected candidate, then move the selection to the next unjudged one."""
        cand = self.selected_candidate()
        if cand is None:
            return None
        saved = self._write("verdict", f"{cand.letter} {value}", value=value, label_uuid=cand.uuid)
        self.selected = self._first_unjudged(self.selected)
        return saved

    @changes
    def prefer(self) -> Saved | None:
        cand = self.selected_candidate()
        if cand is None:
            return None
        return self._write("preference", f"prefer {cand.letter}", label_uuid=cand.uuid)

    @changes
    def prefer_neither(self) -> Saved:
        return self._write("preference", "prefer neither", value="neither")

    @changes
    def gold_label(self, text: str) -> Saved:
        return self._write("gold_label", "own label", value=text)

    @changes
    def skip(self) -> Saved:
        return self._write("skip", "skipped")

    @changes
    def flag(self, note: str) -> Saved:
        return self._write("flag", "flagged", value=note)

    @changes
    def note(self, text: str) -> Saved:
        return self._write("note", "note", value=text)

    @changes
    def undo(self) -> Saved | None:
        """Retract this annotator's last event on this feature that is still in force."""
        assert self.view is not None
        target = sj.last_live(self.project, self.view.feature_id, self.annotator)
        if target is None:
            return None
        return self._write("retract", f"undid {sj.base_kind(target['kind'])}",
                           target_uuid=target["uuid"])

    def others(self) -> list[sj.FeatureJudgment]:
        """Other annotators' judgments of this feature (shown to a lead only)."""
        if not self.lead or self.view is None:
            return []
        return sq.others(self.project, self.view.feature_id, self.annotator)
