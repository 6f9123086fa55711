"""Which source a score run writes into, checked against what produced that source.

The source is ``--source NAME`` (an existing source, or a new one of that name) or else
``MODEL/SAE`` from the two names.  A source of that name that was scored from something else
(another fingerprint, :mod:`engine.scoring.fingerprint`) is never taken as done: the run is
refused with one line saying what differs, unless ``--redo`` replaces it, which must then
rescore every feature the source holds (else it would mix two SAEs under one name).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saegold.store.db import Project, loads
from saegold.store.features import source_name
from saegold.store.fingerprints import fingerprint_differences, identity_differences, merged_fingerprint, refusal

from .errors import ScoringError

MAX_NAME = 200


@dataclass
class ResolvedSource:
    name: str
    model_id: str
    sae_id: str
    fingerprint: dict[str, Any]
    replace: bool = False                       # --redo of another run: the fingerprint is replaced
    notes: list[str] = field(default_factory=list)
    recorded: dict[str, Any] = field(default_factory=dict)   # the source's fingerprint after this run


def check_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ScoringError(f"--source {name!r}: a source name is 1-{MAX_NAME} printable characters")
    return name


def resolve_source(project: Project, *, source: str | None, model_id: str, sae_id: str,
                   fingerprint: dict[str, Any], redo: bool, requested: list[int]) -> ResolvedSource:
    """The source this run writes into; ``requested`` is every feature the run covers (all its
    shards together).  Raises a one-line ScoringError when the stored source is something else."""
    name = check_name(source) if source is not None else source_name(model_id, sae_id)
    row = project.db.execute("SELECT id, model_id, sae_id, fingerprint FROM sources WHERE name = ?",
                             [name]).fetchone()
    if row is None:
        notes = [f"new source {name!r}"] if source is not None else []
        return ResolvedSource(name, model_id, sae_id, fingerprint, notes=notes, recorded=fingerprint)
    sid, stored_model, stored_sae, stored_fp = row
    stored = loads(stored_fp)
    resolved = ResolvedSource(name, stored_model, stored_sae, fingerprint,
                              recorded=merged_fingerprint(stored, fingerprint))
    diffs = fingerprint_differences(stored, fingerprint)
    if diffs and not redo:
        msg = refusal(name, diffs)
        flag = next((d for d in diffs if d.startswith("verified negatives ")), None)
        if flag is not None:   # the one setting a default change makes differ: name its flag
            msg += (f", or {'--verified-negatives' if flag.endswith('vs False') else '--no-verified-negatives'}"
                    f" to score as the source was scored")
        raise ScoringError(msg)
    if diffs:
        scored = {r[0] for r in project.db.execute(
            "SELECT f.idx FROM features f JOIN taxonomy_scores t ON t.feature_id = f.id WHERE f.source_id = ?",
            [sid])}
        outside = scored - set(requested)
        if outside:
            raise ScoringError(
                f"--redo of source {name!r} from another model, SAE or settings ({'; '.join(diffs)}) must "
                f"rescore all {len(scored)} features it holds, and {len(outside)} lie outside --features: "
                f"drop --features, or give --source NAME to score this as a new source")
        identity = identity_differences(stored, fingerprint)
        if identity:
            made = project.db.execute(
                "SELECT (SELECT count(*) FROM labels l JOIN features f ON f.id = l.feature_id WHERE f.source_id = ?), "
                "(SELECT count(*) FROM judgments j JOIN features f ON f.id = j.feature_id WHERE f.source_id = ?)",
                [sid, sid]).fetchone()
            if made[0] or made[1]:
                raise ScoringError(
                    f"--redo of source {name!r} from another model or SAE ({'; '.join(identity)}): its {made[0]} "
                    f"label(s) and {made[1]} judgment(s) describe the old one's features and would be taken for "
                    f"the new one's: give --source NAME to score this as a new source")
            resolved.model_id, resolved.sae_id = model_id, sae_id
        if identity and "input" not in fingerprint and project.db.execute(
                "SELECT 1 FROM features f JOIN taxonomy_scores t ON t.feature_id = f.id "
                "WHERE f.source_id = ? AND t.input_score IS NOT NULL LIMIT 1", [sid]).fetchone():
            raise ScoringError(
                f"--redo of source {name!r} from another model or SAE ({'; '.join(diffs)}) must rescore its "
                f"input scores too, which came from the old one: give --corpus, or --source NAME for a new source")
        # Another model or SAE: the run's fingerprint is the whole story; other settings only:
        # the parts this run does not touch stay.
        resolved.replace, resolved.recorded = True, fingerprint if identity else {**stored, **fingerprint}
        resolved.notes.append(f"source {name!r}: replacing what it was scored from ({'; '.join(diffs)})")
    elif not stored:
        resolved.notes.append(f"source {name!r} had no fingerprint (scored before saegold recorded them, or "
                              f"imported): this run's is recorded")
    return resolved
