"""The features a researcher looks at next: where annotators disagree, or that were flagged.

A feature is listed when two annotators gave it different tiers, when two annotators gave one
candidate label different verdicts, or when any annotator flagged it.  Each comes with every
annotator's tier, verdict per candidate (method and text), flags and notes, and the lead's
adjudication where there is one, so the HTML report can show them side by side.  Text here is
untrusted (labels, notes): whoever renders it escapes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from saegold.store.db import Project

from . import data


@dataclass(frozen=True)
class Candidate:
    label_uuid: str
    method: str
    text: str | None


@dataclass
class AnnotatorView:
    annotator: str
    tier: str | None
    confidence: int | None
    verdicts: dict[str, str]          # label uuid -> verdict
    flags: list[str]
    notes: list[str]
    is_adjudication: bool = False


@dataclass
class Dispute:
    source: str
    feature: int
    category: str | None
    reasons: list[str]                # "tier split (input 1, cross 1)", "verdict split on baez", "flagged"
    candidates: list[Candidate]
    views: list[AnnotatorView] = field(default_factory=list)


def disputes(project: Project) -> list[Dispute]:
    """Every disputed or flagged feature, in (source, feature) order."""
    own, adj = data.judgments(project)
    feats = data.features(project)
    labels = data.labels(project)
    by_feature: dict[int, list] = {}
    for j in own:
        by_feature.setdefault(j.feature_id, []).append(j)
    adj_by_feature: dict[int, list] = {}
    for j in adj:
        adj_by_feature.setdefault(j.feature_id, []).append(j)
    out = []
    for fid, js in by_feature.items():
        reasons = []
        tiers = [j.tier for j in js if j.tier]
        if len(set(tiers)) > 1:
            tally = ", ".join(f"{t} {tiers.count(t)}" for t in sorted(set(tiers)))
            reasons.append(f"tier split ({tally})")
        judged_uuids = sorted({u for j in js for u in j.verdicts})
        for uuid in judged_uuids:
            votes = [j.verdicts[uuid] for j in js if uuid in j.verdicts]
            if len(set(votes)) > 1:
                method = labels[uuid].method if uuid in labels else "unknown"
                reasons.append(f"verdict split on {method} ({', '.join(sorted(votes))})")
        flagged = [j.annotator for j in js if j.flags]
        if flagged:
            reasons.append(f"flagged by {', '.join(flagged)}")
        if not reasons:
            continue
        cands = [Candidate(lab.uuid, lab.method, lab.text) for lab in labels.values()
                 if lab.feature_id == fid and (lab.status == "ok" or lab.uuid in judged_uuids)]
        views = [AnnotatorView(j.annotator, j.tier, j.confidence, dict(j.verdicts), list(j.flags),
                               list(j.notes)) for j in js]
        views += [AnnotatorView(j.annotator, j.tier, j.confidence, dict(j.verdicts), [], list(j.notes),
                                is_adjudication=True) for j in adj_by_feature.get(fid, [])]
        f = feats[fid]
        out.append(Dispute(f.source, f.index, f.category, reasons, cands, views))
    return sorted(out, key=lambda d: (d.source, d.feature))
