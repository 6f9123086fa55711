"""Builders for statistics tests: projects written through the real store helpers."""
from __future__ import annotations

from typing import Any

import pytest

from saegold.engine.bench import results as bench_results

from saegold.store import features as store_features
from saegold.store import labels as store_labels
from saegold.store.db import Project
from saegold.store.judgments import append_many, ensure_annotator, make_event


class Builder:
    """Writes features, labels, benchmark scores and judgments into a real project."""

    def __init__(self, project: Project):
        self.project = project
        self.events: list[dict[str, Any]] = []
        self._t = 0

    def features(self, n: int, *, model: str = "tiny-model", sae: str = "3-res-test", layer: int = 3,
                 scores: list[tuple[float, float]] | None = None,
                 thresholds: tuple[float, float] = (0.5, 0.01)) -> list[int]:
        ids = []
        with self.project.write() as db:
            sid = store_features.get_or_create_source(db, model, sae, layer=layer, d_sae=64, width=16)
            for i in range(n):
                fid = store_features.upsert_feature(db, sid, i)
                # One top example: the queue can hand the feature out (its sampling frame).
                store_features.put_examples(db, fid, "top", [{"tokens": ["a", f"w{i}"], "acts": [0.0, 1.0]}],
                                            origin="scored")
                if scores is not None:
                    store_features.put_score(db, fid, input_threshold=thresholds[0],
                                             output_threshold=thresholds[1], scorer_version="test",
                                             input_score=scores[i][0], output_score=scores[i][1])
                ids.append(fid)
        return ids

    def label(self, fid: int, method: str, text: str) -> str:
        with self.project.write() as db:
            return store_labels.add_label(db, fid, method, text, origin="saegold")

    def bench(self, label_uuid: str, benchmark: str, value: float | None, control: str = "true",
              n: int = 20, parse_failures: int = 0, details: dict | None = None) -> None:
        """Through the bench job's own writer (the scored text is not read by the statistics)."""
        lid = self.project.scalar("SELECT id FROM labels WHERE uuid = ?", [label_uuid])
        bench_results.write(self.project, bench_results.BenchRow(
            label_id=lid, benchmark=benchmark, control=control, scored_label_id=lid, value=value, n=n,
            parse_failures=parse_failures, judge_model="test-judge", seed=0, details=details or {}))

    def _time(self) -> str:
        self._t += 1
        return f"2026-01-01T00:{self._t // 60:02d}:{self._t % 60:02d}.000000Z"

    def judge(self, annotator: str, fid: int, *, tier: str | None = None, confidence: int | None = None,
              verdicts: dict[str, str] | None = None, seconds: float | None = 20.0,
              gold_label: str | None = None, preference: str | None = None, skip: bool = False,
              adjudicate: bool = False) -> None:
        prefix = "adj_" if adjudicate else ""
        if tier is not None:
            self.events.append(make_event(annotator, fid, prefix + "tier", value=tier, confidence=confidence,
                                          seconds_spent=seconds, created_at=self._time()))
        for label_uuid, verdict in (verdicts or {}).items():
            self.events.append(make_event(annotator, fid, prefix + "verdict", value=verdict,
                                          label_uuid=label_uuid, seconds_spent=seconds,
                                          created_at=self._time()))
        if gold_label is not None:
            self.events.append(make_event(annotator, fid, prefix + "gold_label", value=gold_label,
                                          seconds_spent=seconds, created_at=self._time()))
        if preference is not None:
            self.events.append(make_event(annotator, fid, "preference", label_uuid=preference,
                                          seconds_spent=seconds, created_at=self._time()))
        if skip:
            self.events.append(make_event(annotator, fid, "skip", seconds_spent=seconds, created_at=self._time()))

    def lead(self, name: str) -> None:
        ensure_annotator(self.project, name, "lead")

    def commit(self) -> int:
        for name in sorted({e["annotator"] for e in self.events}):
            ensure_annotator(self.project, name)
        n = append_many(self.project, self.events)
        self.events = []
        return n


@pytest.fixture
def build(project) -> Builder:
    return Builder(project)
