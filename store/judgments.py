"""Judgments: an append-only event log, and the current view derived from it.

Events are never updated or deleted (triggers refuse it).  Undo appends a ``retract``
event that names the event it takes back.  Each event carries a client-made UUID, so a
retried write or a merge of two databases never duplicates one.
"""
from __future__ import annotations

import getpass
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any

from .db import Project, now
from .errors import StoreError

TIERS = ("input", "output", "cross", "obscure")
VERDICTS = ("correct", "partly", "wrong")  # ordinal: correct > partly > wrong
KINDS = ("tier", "verdict", "preference", "gold_label", "skip", "flag", "note", "retract",
         "adj_tier", "adj_verdict", "adj_gold_label")
LEAD_KINDS = ("adj_tier", "adj_verdict", "adj_gold_label")
COLUMNS = ("uuid", "annotator", "login", "feature_id", "kind", "label_uuid", "value",
           "confidence", "target_uuid", "seconds_spent", "created_at")


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
    value = event.get("value")
    if kind in ("tier", "adj_tier") and value not in TIERS:
        raise ValueError(f"field 'value': tier {value!r} is not one of {', '.join(TIERS)}")
    if kind in ("verdict", "adj_verdict"):
        if value not in VERDICTS:
            raise ValueError(f"field 'value': verdict {value!r} is not one of {', '.join(VERDICTS)}")
        if not event.get("label_uuid"):
            raise ValueError("field 'label_uuid': a verdict must name its candidate label")
    if kind == "preference" and not (value == "neither" or event.get("label_uuid")):
        raise ValueError("field 'value': a preference names a candidate label or 'neither'")
    if kind in ("gold_label", "adj_gold_label") and (not isinstance(value, str) or not value.strip()):
        raise ValueError("field 'value': a gold label needs text")
    if kind == "retract" and not event.get("target_uuid"):
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

    Checks identity: a retraction must come from the annotator who wrote the target, or
    from a lead; adjudications only from a lead.
    """
    for event in events:
        validate(event)
    inserted = 0
    with project.write() as db:
        for event in events:
            _check_identity(project, event)
            cur = db.execute(
                f"INSERT OR IGNORE INTO judgments({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COLUMNS)})",
                [event.get(c) for c in COLUMNS],
            )
            inserted += cur.rowcount
    return inserted


def _check_identity(project: Project, event: dict[str, Any]) -> None:
    kind, who = event["kind"], event["annotator"]
    if kind in LEAD_KINDS and role_of(project, who) != "lead":
        raise StoreError(f"{who!r} is not a lead: only a lead can adjudicate")
    if kind == "retract":
        target = project.db.execute(
            "SELECT annotator, feature_id FROM judgments WHERE uuid = ?", [event["target_uuid"]]
        ).fetchone()
        if target is None:
            raise StoreError(f"retraction names an unknown event {event['target_uuid']!r}")
        if target[0] != who and role_of(project, who) != "lead":
            raise StoreError(
                f"{who!r} cannot retract an event of {target[0]!r} (only its author or a lead can)"
            )


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


def derive(rows: list[dict[str, Any]]) -> dict[tuple[int, str], FeatureJudgment]:
    """Fold events (in log order) into the current view per (feature, annotator).

    Adjudications are folded under the lead's name with ``is_adjudication`` set.
    """
    retracted = {r["target_uuid"] for r in rows if r["kind"] == "retract"}
    view: dict[tuple[int, str], FeatureJudgment] = {}
    for r in sorted(rows, key=lambda r: (r["created_at"], r.get("seq") or 0)):
        if r["kind"] == "retract" or r["uuid"] in retracted:
            continue
        adj = r["kind"].startswith("adj_")
        key = (r["feature_id"], r["annotator"] + (" (adjudication)" if adj else ""))
        j = view.get(key)
        if j is None:
            j = view[key] = FeatureJudgment(r["feature_id"], r["annotator"], is_adjudication=adj)
        kind = r["kind"].removeprefix("adj_")
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


def current(project: Project, *, feature_id: int | None = None,
            annotator: str | None = None) -> dict[tuple[int, str], FeatureJudgment]:
    return derive(events(project, feature_id=feature_id, annotator=annotator))
