"""The steering step of ``saegold score``: steered continuations at the project's target KLs.

Runs after the output scores, on the same loaded model and SAE, one chunk of features per
transaction (Ctrl+C keeps finished chunks).  A feature counts as done when it has a result
for every current target made with the current settings (prompts, tokens, temperature,
seed, version); ``redo`` recomputes.  The definition is in :mod:`.steering`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from saegold.engine.progress import Progress, null_progress
from saegold.store import settings
from saegold.store.db import Project
from saegold.store.features import upsert_feature
from saegold.store.steering import SteeredRow, clean_settings, done_settings, put_clean, replace_feature

from .models import HookSite, LoadedModel
from .steering import Steerer, SteeringConfig, clean_continuations, steer_chunk


@dataclass
class SteeringReport:
    steered: int = 0
    skipped: int = 0
    unreached: int = 0          # (feature, target) results whose KL is outside the tolerance
    self_check: float | None = None
    path: str = ""


def config_from_settings(cfg: settings.Settings, seed: int = 0) -> SteeringConfig:
    """The steering configuration of the project's (checked) settings."""
    return SteeringConfig(targets=tuple(cfg.steering_targets), prompts=tuple(cfg.steering_prompts),
                          n_tokens=cfg.steering_tokens, temperature=cfg.steering_temperature, seed=int(seed))


def _done(stored: list[tuple[float, dict]] | None, config: SteeringConfig) -> bool:
    if not stored:
        return False
    want = config.settings()
    return sorted(t for t, _ in stored) == sorted(float(t) for t in config.targets) \
        and all(s == want for _, s in stored)


def steer_features(project: Project, lm: LoadedModel, sae: Any, site: HookSite, source_id: int, source: str,
                   scope: list[int], config: SteeringConfig, *, redo: bool = False, feature_batch: int = 256,
                   progress: Progress = null_progress) -> SteeringReport:
    """Steer every feature of ``scope`` not done yet and store the results."""
    report = SteeringReport()
    stored = {} if redo else done_settings(project, source)
    todo = [j for j in scope if redo or not _done(stored.get(j), config)]
    report.skipped = len(scope) - len(todo)
    if not todo:
        return report
    steerer = Steerer(lm, sae, site, config)
    probe = torch.tensor(todo[:: max(1, len(todo) // 3)][:3], dtype=torch.long)
    report.self_check = steerer.self_check(probe)
    report.path = steerer.plan.name
    want = config.settings()

    def text(ids: list[int]) -> str:
        return lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False)

    clean_stored = clean_settings(project, source)
    if redo or any(clean_stored.get(p) != want for p in config.prompts):
        clean = clean_continuations(steerer)
        with project.write() as db:
            for prompt, ids in zip(config.prompts, clean):
                put_clean(db, source_id, prompt, text(ids), ids, {"settings": want})

    progress("steering", 0, len(todo))
    for start in range(0, len(todo), feature_batch):
        chunk = todo[start:start + feature_batch]
        res = steer_chunk(steerer, chunk, batch_size=feature_batch)
        s = res.search
        with project.write() as db:
            for i, j in enumerate(chunk):
                rows = []
                for k, target in enumerate(config.targets):
                    conts = [{"prompt": p, "text": text(ids), "token_ids": ids}
                             for p, ids in zip(config.prompts, res.continuations[i][k])]
                    details = {"settings": want, "alpha0": float(s.alpha0[i]), "evals": int(s.evals[i, k]),
                               "resid_norm": steerer.resid_norm, "path": report.path}
                    rows.append(SteeredRow(0, float(target), float(s.alpha[i, k]), float(s.kl[i, k]),
                                           bool(s.reached[i, k]), conts, details))
                    report.unreached += not bool(s.reached[i, k])
                replace_feature(db, upsert_feature(db, source_id, j), rows)
        report.steered += len(chunk)
        progress("steering", report.steered, len(todo))
    return report
