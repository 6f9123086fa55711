"""What a project holds: counts per table, category and label method, annotation progress."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from .db import Project, loads
from .examples import has_top
from .features import CATEGORIES
from .fingerprints import fingerprint_id
from .judgments import current
from .queue import idle_limit, leases


# The annotation queue hands out only features with activating examples (store/queue.py); the
# others cannot be judged.  What the owner is told about them, here and in `score --from-stored`:
NO_EXAMPLES = "no activating examples (an explanation-only import)"
NO_EXAMPLES_FILL = ("import Neuronpedia's feature JSON with activations (GET /api/feature/MODEL/SOURCE/INDEX), "
                    "or score them on the model: saegold score --model M --sae S --corpus C --source NAME")


def not_judgeable(project: Project) -> dict[str, int]:
    """Features that cannot be judged (no activating examples), per source; sources with none
    are left out."""
    return {r["name"]: r["features"] - r["with_examples"] for r in feature_counts(project, full=False)
            if r["features"] - r["with_examples"]}


def feature_counts(project: Project, *, full: bool = True) -> list[dict[str, Any]]:
    """Per source (by name): its features, those with top examples and (``full``) those
    with scores and with a live label, in one pass over the features: per feature one probe
    of a small index per count (schema m009), never a scan of the examples."""
    scored, labeled = ("NULL", "NULL") if not full else (
        "sum(EXISTS (SELECT 1 FROM taxonomy_scores t WHERE t.feature_id = f.id))",
        "sum(EXISTS (SELECT 1 FROM labels l WHERE l.feature_id = f.id AND l.status = 'ok' "
        "AND l.superseded_at IS NULL))")
    return project.query(
        "SELECT s.name, s.hook_name, s.layer, s.d_sae, s.fingerprint, COALESCE(c.features, 0) AS features, "
        "COALESCE(c.with_examples, 0) AS with_examples, COALESCE(c.scored, 0) AS scored, "
        "COALESCE(c.labeled, 0) AS labeled FROM sources s LEFT JOIN ("
        "  SELECT f.source_id AS sid, count(*) AS features, "
        f"  sum({has_top('f.id')}) AS with_examples, {scored} AS scored, {labeled} AS labeled "
        "  FROM features f GROUP BY f.source_id) c ON c.sid = s.id ORDER BY s.name")


def not_judgeable_line(per_source: dict[str, int], judgeable: int | None = None) -> str | None:
    """One sentence: how many features cannot be judged, why, and what would fill them."""
    n = sum(per_source.values())
    if not n:
        return None
    where = ", ".join(f"{name} {k:,}" for name, k in per_source.items())
    head = f"{judgeable:,} feature(s) can be judged; " if judgeable is not None else ""
    return (f"{head}{n:,} feature(s) cannot be judged and are not in any annotator's queue: "
            f"{NO_EXAMPLES} [{where}]. To fill them: {NO_EXAMPLES_FILL}.")


def table_counts(project: Project) -> dict[str, int]:
    names = [r["name"] for r in project.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name")]
    return {name: project.scalar(f'SELECT count(*) FROM "{name}"') for name in names}


def sources(project: Project, counts: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per source: name, hook, layer, width, its features with examples, scores, labels, and
    ``fingerprint`` (a short id of what produced it; None when unknown) with ``made_from``,
    the fingerprint itself."""
    counts = feature_counts(project) if counts is None else counts
    out = []
    for r in counts:
        row = {k: r[k] for k in ("name", "hook_name", "layer", "d_sae", "features", "with_examples", "scored",
                                 "labeled")}
        row["made_from"] = loads(r["fingerprint"])
        row["fingerprint"] = fingerprint_id(row["made_from"])
        out.append(row)
    return out


def categories(project: Project) -> dict[str, int]:
    """Features per category; ``unscored`` counts features without both scores."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for row in project.query("SELECT category, count(*) AS n FROM taxonomy_scores GROUP BY category"):
        if row["category"] in counts:
            counts[row["category"]] = row["n"]
    counts["unscored"] = project.scalar("SELECT count(*) FROM features") - sum(counts.values())
    return counts


def label_methods(project: Project) -> list[dict[str, Any]]:
    """Per method: live labels (ok), superseded ones, failed attempts, the features with a
    live label, and the origins (sorted).  Two index scans (schema m009), not a scan of the
    labels with a sort for the distinct features."""
    out: dict[str, dict[str, Any]] = {}
    for method, status_, origin, live, n in project.db.execute(
            "SELECT method, status, origin, sum(superseded_at IS NULL), count(*) FROM labels "
            "GROUP BY method, status, origin"):
        m = out.setdefault(method, {"method": method, "ok": 0, "superseded": 0, "failed": 0, "features": 0,
                                    "origins": set()})
        m["origins"].add(origin)
        if status_ == "ok":
            m["ok"] += live
            m["superseded"] += n - live
        elif status_ == "failed":
            m["failed"] += n
    for method, n in project.db.execute(
            "SELECT method, count(DISTINCT feature_id) FROM labels INDEXED BY labels_current_method "
            "WHERE status = 'ok' AND superseded_at IS NULL GROUP BY method"):
        out[method]["features"] = n
    return [{**m, "origins": ",".join(sorted(m["origins"]))} for _, m in sorted(out.items())]


def annotation_progress(project: Project) -> list[dict[str, Any]]:
    """Per annotator: assigned, judged (a tier, verdict, preference or own label: skips,
    flags and notes alone do not count), done (tier and a verdict on every usable
    candidate), skipped, flagged, events written, last activity."""
    view = current(project)
    judged_fids = {key.feature_id for key in view}
    cands: dict[int, list[str]] = defaultdict(list)
    if judged_fids:
        for row in project.db.execute("SELECT feature_id, uuid FROM labels WHERE status = 'ok' "
                                      "AND superseded_at IS NULL"):
            if row[0] in judged_fids:
                cands[row[0]].append(row[1])
    roles = {r["name"]: r["role"] for r in project.query("SELECT name, role FROM annotators")}
    assigned = {r["annotator"]: r["n"] for r in project.query(
        "SELECT annotator, count(*) AS n FROM assignments GROUP BY annotator")}
    events = {r["annotator"]: (r["n"], r["last_at"]) for r in project.query(
        "SELECT annotator, count(*) AS n, max(created_at) AS last_at FROM judgments GROUP BY annotator")}
    judged: Counter[str] = Counter()
    done: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    adjudicated: Counter[str] = Counter()
    for (fid, name, is_adjudication), j in view.items():
        if is_adjudication:
            adjudicated[j.annotator] += 1
            continue
        judged[name] += j.judged
        done[name] += j.done(cands.get(fid, []))
        skipped[name] += j.skipped
        flagged[name] += bool(j.flags)
    names = sorted(set(roles) | set(assigned) | set(events) | set(judged))
    return [{
        "annotator": name, "role": roles.get(name, "annotator"), "assigned": assigned.get(name, 0),
        "judged": judged[name], "done": done[name], "skipped": skipped[name],
        "flagged": flagged[name], "adjudicated": adjudicated[name],
        "events": events.get(name, (0, None))[0], "last_at": events.get(name, (0, None))[1],
    } for name in names]


def lease_summary(project: Project) -> dict[str, Any]:
    """Features held by annotators who have not judged them yet (store.queue leases)."""
    held = leases(project)
    per: Counter[str] = Counter(lease.annotator for lease in held)
    return {"held": len(held), "expired": sum(lease.expired for lease in held),
            "annotators": dict(sorted(per.items())),
            "idle_minutes": idle_limit(project).total_seconds() / 60}


def imports(project: Project) -> list[dict[str, Any]]:
    if not project.scalar("SELECT 1 FROM sqlite_master WHERE name = 'import_log'"):
        return []
    return project.query(
        "SELECT kind, path, records, rejected, bytes, sha256, imported_at FROM import_log ORDER BY id")


def status(project: Project) -> dict[str, Any]:
    """Everything `saegold status` shows, as plain data (``--json`` prints it as is)."""
    counts = feature_counts(project)
    nj = {r["name"]: r["features"] - r["with_examples"] for r in counts if r["features"] - r["with_examples"]}
    return {
        "path": str(project.path),
        "schema_version": project.schema_version,
        "tables": table_counts(project),
        "sources": sources(project, counts),
        "not_judgeable": {"features": sum(nj.values()), "by_source": nj, "reason": NO_EXAMPLES,
                          "to_fill": NO_EXAMPLES_FILL},
        "categories": categories(project),
        "label_methods": label_methods(project),
        "annotators": annotation_progress(project),
        "leases": lease_summary(project),
        "imports": imports(project),
    }
