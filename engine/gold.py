"""Gold data: resolve the annotators' judgments into one record per feature, and export it.

Resolution policies (for the tier, each candidate's verdict and the annotators' own labels):

- ``majority`` (default): the value most annotators gave; a tie stays unresolved (None) and
  the record says why.
- ``unanimous``: only a value every annotator who answered gave.
- ``adjudicated``: a lead's adjudication wins; without one, the majority.

The gold label is, in this order: the lead's adjudicated label (policy ``adjudicated``); the
candidate whose resolved verdict is "correct" (several: most "correct" votes, then most
preferences; still tied: unresolved); the annotators' own label text, resolved like a
vote (texts compared with whitespace collapsed and case folded).

Formats: ``jsonl`` (nested records), ``csv`` (nested fields as JSON text), ``parquet``
(pyarrow, nested types), ``neuronpedia`` (a JSON array of Neuronpedia explanation records,
the shape of Neuronpedia's explanation exports) and ``graph-labels`` (a JSON array of
``[feature id, label]`` pairs for attribution-graph node labels; the feature id is
``"{layer}_{index}"``, as in circuit-tracer / Neuronpedia graph node ids, or
``"{sae_id}_{index}"`` where the layer is unknown).
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from saegold.engine.progress import Progress, null_progress
from saegold.engine.stats import data
from saegold.store import judgments as store_judgments
from saegold.store.db import Project
from saegold.store.export import atomic_path
from saegold.store.errors import SaegoldError
from saegold.store.judgments import TIERS, FeatureJudgment

POLICIES = ("majority", "unanimous", "adjudicated")
FORMATS = ("jsonl", "csv", "parquet", "neuronpedia", "graph-labels")
EXPLANATION_MODEL = "saegold-gold"
TYPE_NAME = "saegold_gold"

#: Column order and types of a record (nested ones are JSON text in CSV).  ``source`` and
#: ``feature`` (the index) name the feature as every other export and ``import judgments`` do.
SCALAR_COLUMNS: dict[str, type] = {
    "source": str, "feature": int, "model_id": str, "sae_id": str, "layer": int, "auto_category": str, "input_score": float, "output_score": float,
    "tier": str, "tier_source": str, "tier_reason": str,
    "gold_label": str, "gold_label_source": str, "gold_label_reason": str,
    "n_annotators": int, "tier_agreement": float, "verdict_agreement": float,
    "n_skipped": int, "n_flagged": int, "preferred_neither": int,
    "first_at": str, "last_at": str, "policy": str,
}
NESTED_COLUMNS = ("tier_votes", "candidates", "annotator_gold_labels", "annotators", "adjudicated_by")


class GoldError(SaegoldError):
    """The gold export cannot be done as asked."""


# -- resolution ----------------------------------------------------------------------------

def resolve(votes: list[str], policy: str, adjudicated: str | None = None
            ) -> tuple[str | None, str | None, str | None]:
    """(value, source, reason): the resolved value, how it was resolved, or why it was not."""
    if policy not in POLICIES:
        raise GoldError(f"unknown policy {policy!r} (choose {', '.join(POLICIES)})")
    if policy == "adjudicated" and adjudicated is not None:
        return adjudicated, "adjudication", None
    if not votes:
        return None, None, "no judgments"
    counts = Counter(votes).most_common()
    tally = ", ".join(f"{v} {n}" for v, n in counts)
    if policy == "unanimous":
        if len(counts) == 1:
            return counts[0][0], "unanimous", None
        return None, None, f"not unanimous ({tally})"
    if len(counts) == 1 or counts[0][1] > counts[1][1]:
        return counts[0][0], "majority", None
    return None, None, f"tie ({tally})"


def _pair_agreement(values_per_item: list[list[str]]) -> float | None:
    agree = total = 0
    for values in values_per_item:
        for a, b in itertools.combinations(values, 2):
            total += 1
            agree += a == b
    return agree / total if total else None


def feature_record(feature: data.FeatureInfo, own: list[FeatureJudgment], adj: list[FeatureJudgment],
                   labels: list[data.LabelInfo], policy: str,
                   decided: FeatureJudgment | None = None) -> dict[str, Any]:
    """The gold record of one feature from its judgments (``own``) and lead adjudications.

    ``decided``: every lead's adjudications of the feature folded in time order, so each
    field holds the latest decision (see :func:`latest_adjudications`).  Without it, the
    lead whose last adjudication is latest comes first."""
    # Several leads may adjudicate one feature: the latest decision wins, not the
    # alphabetically last lead.
    latest_first = [decided] if decided is not None else \
        sorted(adj, key=lambda j: (j.last_at or "", j.annotator), reverse=True)
    tier_votes = [j.tier for j in own if j.tier is not None]
    adj_tier = next((j.tier for j in latest_first if j.tier is not None), None)
    tier, tier_source, tier_reason = resolve(tier_votes, policy, adj_tier)

    preferences = Counter(j.preference for j in own if j.preference)
    judged_uuids = {u for j in own + adj for u in j.verdicts}
    known = {lab.uuid for lab in labels}
    cands = list(labels) + [data.LabelInfo(u, -1, feature.id, "unknown", None, "missing")
                            for u in sorted(judged_uuids - known)]
    candidates, verdict_items = [], []
    for lab in cands:
        votes = [j.verdicts[lab.uuid] for j in own if lab.uuid in j.verdicts]
        adj_v = next((j.verdicts[lab.uuid] for j in latest_first if lab.uuid in j.verdicts), None)
        verdict, _, verdict_reason = resolve(votes, policy, adj_v)
        c = Counter(votes)
        candidates.append({
            "label_uuid": lab.uuid, "method": lab.method, "text": lab.text,
            "correct": c["correct"], "partly": c["partly"], "wrong": c["wrong"],
            "verdict": verdict, "verdict_reason": verdict_reason,
            "preferred_by": preferences.get(lab.uuid, 0),
        })
        verdict_items.append(votes)

    own_labels = [j.gold_label for j in own if j.gold_label]
    gold, gold_source, gold_reason = _gold_label(policy, latest_first, candidates, own_labels)
    judged = [j for j in own if j.judged]   # a skip, flag or note alone judges nothing
    times = [t for j in judged + adj for t in (j.first_at, j.last_at) if t]
    return {
        "source": feature.source, "feature": feature.index, "model_id": feature.model_id,
        "sae_id": feature.sae_id, "layer": feature.layer, "auto_category": feature.category, "input_score": feature.input_score,
        "output_score": feature.output_score,
        "tier": tier, "tier_source": tier_source, "tier_reason": tier_reason,
        "tier_votes": {t: tier_votes.count(t) for t in TIERS},
        "gold_label": gold, "gold_label_source": gold_source, "gold_label_reason": gold_reason,
        "annotator_gold_labels": own_labels,
        "candidates": candidates,
        "preferred_neither": preferences.get("neither", 0),
        "n_annotators": len({j.annotator for j in judged}),
        "tier_agreement": _pair_agreement([tier_votes]),
        "verdict_agreement": _pair_agreement(verdict_items),
        "n_skipped": sum(j.skipped for j in own), "n_flagged": sum(bool(j.flags) for j in own),
        "annotators": sorted({j.annotator for j in judged}),
        "adjudicated_by": sorted({j.annotator for j in adj}),
        "first_at": min(times) if times else None, "last_at": max(times) if times else None,
        "policy": policy,
    }


def _gold_label(policy: str, latest_first: list[FeatureJudgment], candidates: list[dict[str, Any]],
                own_labels: list[str]) -> tuple[str | None, str | None, str | None]:
    adj_label = next((j.gold_label for j in latest_first if j.gold_label), None)
    if policy == "adjudicated" and adj_label:
        return adj_label, "adjudication", None
    correct = [c for c in candidates if c["verdict"] == "correct" and c["text"]]
    if correct:
        best = max((c["correct"], c["preferred_by"]) for c in correct)
        top = [c for c in correct if (c["correct"], c["preferred_by"]) == best]
        if len(top) == 1:
            return top[0]["text"], f"candidate:{top[0]['method']}", None
        return None, None, (f"{len(top)} candidates judged correct equally often "
                            f"({', '.join(c['method'] for c in top)})")
    if own_labels:
        canon: dict[str, str] = {}
        for text in own_labels:
            canon.setdefault(_norm(text), " ".join(text.split()))
        value, _, reason = resolve([_norm(t) for t in own_labels], policy)
        if value is not None:
            return canon[value], "annotator", None
        return None, None, f"no candidate judged correct; annotators' own labels differ ({reason})"
    if not candidates:
        return None, None, "no candidate labels"
    return None, None, "no candidate judged correct and no annotator label"


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def latest_adjudications(project: Project) -> dict[int, FeatureJudgment]:
    """Per feature, every lead's adjudications folded in time order into one judgment: each
    field (tier, each verdict, gold label) holds the latest decision of any lead
    (:func:`store.judgments.decisions`)."""
    return store_judgments.decisions(store_judgments.events(project))


def gold_records(project: Project, *, policy: str = "majority", source: str | None = None,
                 progress: Progress = null_progress) -> list[dict[str, Any]]:
    """One resolved record per judged feature (of ``source``, if given), in feature order."""
    if policy not in POLICIES:
        raise GoldError(f"unknown policy {policy!r} (choose {', '.join(POLICIES)})")
    if source is not None and not project.scalar("SELECT 1 FROM sources WHERE name = ?", [source]):
        known = [r["name"] for r in project.query("SELECT name FROM sources ORDER BY name")]
        raise GoldError(f"--source {source!r}: no such source in this project (known: {', '.join(known) or 'none'})")
    own, adj = data.judgments(project)
    feats = data.features(project)
    labels_by_feature: dict[int, list[data.LabelInfo]] = {}
    for lab in data.labels(project).values():
        if lab.status == "ok":
            labels_by_feature.setdefault(lab.feature_id, []).append(lab)
    by_feature: dict[int, tuple[list[FeatureJudgment], list[FeatureJudgment]]] = {}
    for j in own:
        by_feature.setdefault(j.feature_id, ([], []))[0].append(j)
    for j in adj:
        by_feature.setdefault(j.feature_id, ([], []))[1].append(j)
    # One record per judged feature: one only skipped, flagged or noted is not in the gold data.
    fids = sorted(fid for fid, (o, a) in by_feature.items() if (a or any(j.judged for j in o))
                  and (source is None or feats[fid].source == source))
    decided = latest_adjudications(project) if adj else {}
    records = []
    for n, fid in enumerate(fids):
        o, a = by_feature[fid]
        records.append(feature_record(feats[fid], o, a, labels_by_feature.get(fid, []), policy,
                                      decided.get(fid)))
        progress("gold records", n + 1, len(fids))
    return records


# -- formats -------------------------------------------------------------------------------

def _flat(record: dict[str, Any]) -> dict[str, str]:
    row = {}
    for key, typ in SCALAR_COLUMNS.items():
        v = record.get(key)
        row[key] = "" if v is None else (v if typ is str else repr(v) if typ is float else str(v))
    for key in NESTED_COLUMNS:
        row[key] = json.dumps(record.get(key), ensure_ascii=False)
    return row


def _unflat(row: dict[str, str]) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for key, typ in SCALAR_COLUMNS.items():
        v = row.get(key, "")
        rec[key] = None if v == "" else typ(v)
    for key in NESTED_COLUMNS:
        rec[key] = json.loads(row[key])
    return rec


def _arrow_schema():
    import pyarrow as pa

    types = {int: pa.int64(), float: pa.float64(), str: pa.string()}
    candidate = pa.struct([
        ("label_uuid", pa.string()), ("method", pa.string()), ("text", pa.string()),
        ("correct", pa.int64()), ("partly", pa.int64()), ("wrong", pa.int64()),
        ("verdict", pa.string()), ("verdict_reason", pa.string()), ("preferred_by", pa.int64()),
    ])
    fields = [(k, types[t]) for k, t in SCALAR_COLUMNS.items()] + [
        ("tier_votes", pa.struct([(t, pa.int64()) for t in TIERS])),
        ("candidates", pa.list_(candidate)),
        ("annotator_gold_labels", pa.list_(pa.string())),
        ("annotators", pa.list_(pa.string())),
        ("adjudicated_by", pa.list_(pa.string())),
    ]
    return pa.schema(fields)


def neuronpedia_records(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Neuronpedia explanation records for the features with a resolved gold label."""
    return [{"modelId": r["model_id"], "layer": r["sae_id"], "index": str(r["feature"]),
             "description": r["gold_label"], "explanationModelName": EXPLANATION_MODEL,
             "typeName": TYPE_NAME} for r in records if r["gold_label"]]


def graph_node_id(record: dict[str, Any]) -> str:
    prefix = record["layer"] if record["layer"] is not None else record["sae_id"]
    return f"{prefix}_{record['feature']}"


def graph_labels(records: list[dict[str, Any]]) -> list[list[str]]:
    """``[feature id, gold label]`` pairs for the features with a resolved gold label."""
    return [[graph_node_id(r), r["gold_label"]] for r in records if r["gold_label"]]


def _render_text(records: list[dict[str, Any]], fmt: str) -> tuple[str, int]:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records), len(records)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*SCALAR_COLUMNS, *NESTED_COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(_flat(r) for r in records)
        return buf.getvalue(), len(records)
    if fmt in ("neuronpedia", "graph-labels"):
        out = neuronpedia_records(records) if fmt == "neuronpedia" else graph_labels(records)
        body = ",\n".join(json.dumps(item, ensure_ascii=False) for item in out)  # one item a line
        return f"[\n{body}\n]\n" if out else "[]\n", len(out)
    raise GoldError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")


def _write_atomic(path: Path, write) -> None:
    """``write(temporary path)``, then the file replaces ``path``: no half files."""
    try:
        with atomic_path(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise GoldError(f"{path}: cannot write ({exc.strerror})") from exc


def export_gold(project: Project, *, fmt: str, policy: str = "majority", source: str | None = None,
                output: str | Path | None = None, progress: Progress = null_progress) -> int:
    """Write the gold records of ``project`` as ``fmt`` to ``output`` (None: standard output
    for the text formats); return the number of records written."""
    if fmt not in FORMATS:
        raise GoldError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    if fmt == "parquet" and output in (None, "-"):
        raise GoldError("parquet is binary: give --output PATH")
    records = gold_records(project, policy=policy, source=source, progress=progress)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(records, schema=_arrow_schema())
        assert output is not None   # refused above
        _write_atomic(Path(output), lambda p: pq.write_table(table, p))
        return len(records)
    text, n = _render_text(records, fmt)
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        _write_atomic(Path(output), lambda p: p.write_text(text, encoding="utf-8"))
    return n


def read_gold(path: str | Path, fmt: str) -> list[dict[str, Any]]:
    """Read back a ``jsonl``, ``csv`` or ``parquet`` gold export as records."""
    path = Path(path)
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return [_unflat(row) for row in csv.DictReader(fh)]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise GoldError(f"cannot read back format {fmt!r}")
