"""Judgments: an append-only event log, and the current view derived from it.

Events are never updated or deleted (triggers refuse it).  Undo appends a ``retract``
event that names the event it takes back.  Each event carries a client-made UUID, so a
retried write or a merge of two databases never duplicates one.
"""
from __future__ import annotations

import getpass
import uuid as _uuid
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .db import Project, now
from .errors import StoreError
from .features import CATEGORIES

TIERS = CATEGORIES   # an annotator's tier is their call of the feature's category
VERDICTS = ("correct", "partly", "wrong")  # ordinal: correct > partly > wrong

# -- event kinds: the one place that says what each kind is --------------------------------
# An annotator's own kinds; the judging ones a lead can also adjudicate (``adj_`` + kind),
# which folds into the lead's adjudication, not into their own judgment; a retraction takes
# one earlier event back.  The database's CHECK rule on ``judgments.kind`` and its partial
# index ``judgments_holders`` (schema migrations, frozen) spell out the same lists.
OWN_KINDS = ("tier", "verdict", "preference", "gold_label", "skip", "flag", "note")
ADJUDICABLE = ("tier", "verdict", "gold_label")
RETRACT = "retract"
_ADJ = "adj_"
LEAD_KINDS = tuple(_ADJ + k for k in ADJUDICABLE)
KINDS = (*OWN_KINDS, RETRACT, *LEAD_KINDS)
# Kinds that do not make their author one of a feature's annotators (imported or merged
# judgments arrive without an assignment): a retraction, a lead's adjudication.
NOT_HOLDING = (RETRACT, *LEAD_KINDS)
# The same as SQL, written exactly as in the partial index judgments_holders (schema m003),
# so that a query saying ``kind NOT IN {NOT_HOLDING_SQL}`` can use that index
# (tests/store/test_judgment_log.py checks the two agree).
NOT_HOLDING_SQL = "(" + ", ".join(f"'{k}'" for k in NOT_HOLDING) + ")"
LEADS = "leads"   # the annotator name under which :func:`decisions` folds every lead
COLUMNS = ("uuid", "annotator", "login", "feature_id", "kind", "label_uuid", "value",
           "confidence", "target_uuid", "seconds_spent", "created_at")


def is_adjudication(kind: str) -> bool:
    """Whether an event of this kind is a lead's adjudication."""
    return kind in LEAD_KINDS


def base_kind(kind: str) -> str:
    """What an event of this kind decides: an adjudication's judging kind, else the kind."""
    return kind.removeprefix(_ADJ) if kind in LEAD_KINDS else kind


def as_lead(kind: str) -> str:
    """The kind a lead writes for ``kind``: its adjudication where there is one."""
    return _ADJ + kind if kind in ADJUDICABLE else kind


class Key(NamedTuple):
    """Whose judgment of which feature: an annotator's own, or (``is_adjudication``) the
    adjudication of a lead (or of :data:`LEADS`, every lead folded together)."""

    feature_id: int
    annotator: str
    is_adjudication: bool = False


def login_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return "unknown"


def new_uuid() -> str:
    return str(_uuid.uuid4())


def validate(event: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the field when an event is not well-formed."""
    kind = event.get("kind")
    if kind not in KINDS:
        raise ValueError(f"field 'kind': {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(event.get("annotator"), str) or not event["annotator"].strip():
        raise ValueError("field 'annotator': missing or empty")
    if not isinstance(event.get("feature_id"), int):
        raise ValueError("field 'feature_id': missing")
    value, base = event.get("value"), base_kind(kind)
    if base == "tier" and value not in TIERS:
        raise ValueError(f"field 'value': tier {value!r} is not one of {', '.join(TIERS)}")
    if base == "verdict":
        if value not in VERDICTS:
            raise ValueError(f"field 'value': verdict {value!r} is not one of {', '.join(VERDICTS)}")
        if not event.get("label_uuid"):
            raise ValueError("field 'label_uuid': a verdict must name its candidate label")
    if kind == "preference" and not (value == "neither" or event.get("label_uuid")):
        raise ValueError("field 'value': a preference names a candidate label or 'neither'")
    if base == "gold_label" and (not isinstance(value, str) or not value.strip()):
        raise ValueError("field 'value': a gold label needs text")
    if kind == RETRACT and not event.get("target_uuid"):
        raise ValueError("field 'target_uuid': a retraction must name the event it takes back")
    conf = event.get("confidence")
    if conf is not None and (not isinstance(conf, int) or isinstance(conf, bool) or not 1 <= conf <= 3):
        raise ValueError(f"field 'confidence': {conf!r} is not 1, 2 or 3")


def make_event(annotator: str, feature_id: int, kind: str, *, value: str | None = None,
               label_uuid: str | None = None, confidence: int | None = None,
               target_uuid: str | None = None, seconds_spent: float | None = None,
               uuid: str | None = None, login: str | None = None,
               created_at: str | None = None) -> dict[str, Any]:
    event = {
        "uuid": uuid or new_uuid(), "annotator": annotator, "login": login or login_user(),
        "feature_id": feature_id, "kind": kind, "label_uuid": label_uuid, "value": value,
        "confidence": confidence, "target_uuid": target_uuid, "seconds_spent": seconds_spent,
        "created_at": created_at or now(),
    }
    validate(event)
    return event


def ensure_annotator(project: Project, name: str, role: str = "annotator") -> None:
    """Register an annotator (a lead stays a lead; asking for 'lead' promotes)."""
    with project.write() as db:
        db.execute(
            "INSERT INTO annotators(name, role, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET role = CASE WHEN excluded.role = 'lead' "
            "THEN 'lead' ELSE annotators.role END",
            [name, role, now()],
        )


def role_of(project: Project, name: str) -> str | None:
    return project.scalar("SELECT role FROM annotators WHERE name = ?", [name])


def append(project: Project, event: dict[str, Any]) -> bool:
    """Append one event; return False when its UUID was already there (idempotent retry)."""
    return append_many(project, [event]) == 1


def append_many(project: Project, events: list[dict[str, Any]]) -> int:
    """Append events in one transaction; return how many were new.

    Checks identity (:func:`check_identity`): a retraction must come from the annotator who
    wrote the target, or from a lead; adjudications only from a lead.
    """
    for event in events:
        validate(event)
    inserted = 0
    with project.write() as db:
        for event in events:
            check_identity(db, event)
            cur = db.execute(
                f"INSERT OR IGNORE INTO judgments({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COLUMNS)})",
                [event.get(c) for c in COLUMNS],
            )
            inserted += cur.rowcount
    return inserted


class IdentityError(StoreError):
    """An event its annotator may not write; ``field`` names the event's field at fault
    (``annotator``, or ``target_uuid`` for a retraction of an event that is not there)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def check_identity(db: Any, event: dict[str, Any]) -> None:
    """The one rule of who may write what, on the database ``db`` holds (anything with
    ``execute``: a project's, or the one a merge writes): adjudications only by a lead; a
    retraction only by the author of the event it names, or by a lead.  Raises
    :class:`IdentityError`."""
    kind, who = event["kind"], event["annotator"]
    if not (is_adjudication(kind) or kind == RETRACT):
        return
    role = db.execute("SELECT role FROM annotators WHERE name = ?", [who]).fetchone()
    is_lead = role is not None and role[0] == "lead"
    if is_adjudication(kind) and not is_lead:
        raise IdentityError(f"{who!r} is not a lead: only a lead can adjudicate", "annotator")
    if kind == RETRACT:
        target = db.execute("SELECT annotator FROM judgments WHERE uuid = ?",
                            [event["target_uuid"]]).fetchone()
        if target is None:
            raise IdentityError(f"retraction names an unknown event {event['target_uuid']!r}",
                                "target_uuid")
        if target[0] != who and not is_lead:
            raise IdentityError(
                f"{who!r} cannot retract an event of {target[0]!r} (only its author or a lead can)",
                "annotator")


def events(project: Project, *, feature_id: int | None = None,
           annotator: str | None = None) -> list[dict[str, Any]]:
    where: list[str] = []
    params: list[Any] = []
    if feature_id is not None:
        where.append("feature_id = ?")
        params.append(feature_id)
    if annotator is not None:
        where.append("annotator = ?")
        params.append(annotator)
    sql = "SELECT * FROM judgments" + (f" WHERE {' AND '.join(where)}" if where else "")
    return project.query(sql + " ORDER BY created_at, seq", params)


@dataclass
class FeatureJudgment:
    """One annotator's current judgment of one feature, derived from the event log."""

    feature_id: int
    annotator: str
    tier: str | None = None
    confidence: int | None = None
    verdicts: dict[str, str] = field(default_factory=dict)  # label_uuid -> verdict
    preference: str | None = None  # label uuid or 'neither'
    gold_label: str | None = None
    skipped: bool = False
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds_spent: float = 0.0
    first_at: str | None = None
    last_at: str | None = None
    is_adjudication: bool = False

    @property
    def judged(self) -> bool:
        """Whether this holds a judgment (a tier, a verdict, a preference or an own label),
        not only a skip, a flag or a note.  Every count of "judged" uses this."""
        return self.tier is not None or bool(self.verdicts) or self.preference is not None or bool(self.gold_label)

    def done(self, candidate_uuids: list[str]) -> bool:
        """Tier and a verdict for every candidate are in."""
        return self.tier is not None and all(u in self.verdicts for u in candidate_uuids)


def live(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events still in force, in log order: every event but retractions and the events
    they take back.  Every reading of the log goes through this."""
    rows = list(rows)
    retracted = {r["target_uuid"] for r in rows if r["kind"] == RETRACT}
    return [r for r in sorted(rows, key=lambda r: (r["created_at"], r.get("seq") or 0))
            if r["kind"] != RETRACT and r["uuid"] not in retracted]


def last_live(project: Project, feature_id: int, annotator: str) -> dict[str, Any] | None:
    """The annotator's latest event on a feature that is still in force (what undo takes
    back), or None."""
    still = live(events(project, feature_id=feature_id, annotator=annotator))
    return still[-1] if still else None


def fold(rows: Iterable[dict[str, Any]],
         key_of: Callable[[dict[str, Any]], Key | None]) -> dict[Key, FeatureJudgment]:
    """Fold the live events (in log order) into one judgment per key ``key_of`` gives an
    event (None: the event is left out).  An adjudication's judgment takes its tier,
    verdicts and gold label from adjudications only: a lead's own events give it their
    preference, skip, flags, notes and time."""
    view: dict[Key, FeatureJudgment] = {}
    for r in live(rows):
        key = key_of(r)
        if key is None:
            continue
        j = view.get(key)
        if j is None:
            j = view[key] = FeatureJudgment(key.feature_id, key.annotator,
                                            is_adjudication=key.is_adjudication)
        kind = base_kind(r["kind"])
        if key.is_adjudication and kind in ADJUDICABLE and not is_adjudication(r["kind"]):
            kind = ""   # a lead's own tier, verdict or label decides nothing here
        if kind == "tier":
            j.tier, j.confidence = r["value"], r["confidence"]
        elif kind == "verdict":
            j.verdicts[r["label_uuid"]] = r["value"]
        elif kind == "preference":
            j.preference = r["label_uuid"] or r["value"]
        elif kind == "gold_label":
            j.gold_label = r["value"]
        elif kind == "skip":
            j.skipped = True
        elif kind == "flag":
            j.flags.append(r["value"] or "")
        elif kind == "note":
            j.notes.append(r["value"] or "")
        j.seconds_spent = max(j.seconds_spent, r["seconds_spent"] or 0.0)
        j.first_at = j.first_at or r["created_at"]
        j.last_at = r["created_at"]
    return view


def key_of(event: dict[str, Any]) -> Key:
    """Whose judgment an event belongs to: its annotator's own, or their adjudication."""
    return Key(event["feature_id"], event["annotator"], is_adjudication(event["kind"]))


def derive(rows: Iterable[dict[str, Any]]) -> dict[Key, FeatureJudgment]:
    """The current view per :class:`Key`: each annotator's own judgment of each feature,
    and each lead's adjudication of it (``is_adjudication`` set) apart."""
    return fold(rows, key_of)


def decisions(rows: Iterable[dict[str, Any]]) -> dict[int, FeatureJudgment]:
    """Per feature, every lead's adjudications folded in time order into one judgment
    (annotator :data:`LEADS`): each field (tier, each verdict, gold label) holds the latest
    decision of any lead."""
    view = fold(rows, lambda r: Key(r["feature_id"], LEADS, True) if is_adjudication(r["kind"]) else None)
    return {k.feature_id: j for k, j in view.items()}


def own_view(rows: Iterable[dict[str, Any]], annotator: str, *, lead: bool = False) -> dict[int, FeatureJudgment]:
    """Per feature, the one judgment an annotator works on: their own or, for a lead
    (``lead``), their adjudication, with their own preference, skip, flags and notes."""
    if lead:
        view = fold(rows, lambda r: Key(r["feature_id"], annotator, True) if r["annotator"] == annotator else None)
    else:
        view = {k: j for k, j in derive(rows).items() if k.annotator == annotator and not k.is_adjudication}
    return {k.feature_id: j for k, j in view.items()}


def current(project: Project, *, feature_id: int | None = None,
            annotator: str | None = None) -> dict[Key, FeatureJudgment]:
    return derive(events(project, feature_id=feature_id, annotator=annotator))
