"""The active queue order (issue 16, point 3): draws with recorded probabilities, overlap,
leases and the uniform share; the statistics are in tests/stats/test_active.py."""
from __future__ import annotations

from collections import Counter

import pytest

from appdata import fill

from saegold.store import judgments as sj
from saegold.store import queue as sq
from saegold.store import settings


def _draws(project):
    return project.query("SELECT feature_id, annotator, probability, pool, assigned FROM active_draws ORDER BY id")


def test_active_draws_follow_the_weights_and_are_recorded(project):
    """Weights 0 on all but 4 of 40 features: 80% of the probability goes to those 4, 20% is
    uniform, so every feature keeps probability >= 0.2 / 40; each draw is stored with the
    probability it had; a draw of a held feature is a repeat (assigned 0), never handed out."""
    ids = fill(project, 40)
    settings.set(project, "queue_order", "active")
    heavy = set(ids[:4])
    sq.set_active_weights(project, {f: (1.0 if f in heavy else 0.0) for f in ids})
    _, prob = sq.active_population(project)
    assert min(prob) == pytest.approx(0.2 / 40) and max(prob) == pytest.approx(0.8 / 4 + 0.2 / 40)
    assert sum(prob) == pytest.approx(1.0)
    sj.ensure_annotator(project, "a")
    assert sq.assign_more(project, "a", n=20) == 20
    draws = _draws(project)
    got = sq.queue(project, "a")
    assert [d["feature_id"] for d in draws if d["assigned"]] == got  # each hand-out is a draw
    assert heavy <= set(got[:8])  # the heavy features come early
    by = dict(zip(*sq.active_population(project)))
    for d in draws:
        assert d["probability"] == pytest.approx(by[d["feature_id"]]) and d["pool"] == 40
    repeats = [d for d in draws if not d["assigned"]]
    assert repeats and all(d["feature_id"] in got for d in repeats)  # the heavy ones, drawn again


def test_active_order_keeps_overlap_and_completes_pairs_first(project):
    """Overlap 2: b first gets the features a holds (no new draw for them), and no feature goes
    to a third annotator; uniform weights (none stored) draw every free feature alike."""
    fill(project, 12)
    settings.set(project, "queue_order", "active")
    for who in ("a", "b", "c"):
        sj.ensure_annotator(project, who)
    sq.assign_more(project, "a", n=5)
    n_draws = len(_draws(project))
    sq.assign_more(project, "b", n=5)
    assert set(sq.queue(project, "b")) == set(sq.queue(project, "a"))
    assert len(_draws(project)) == n_draws  # b's were handed out by a's draws
    assert all(d["probability"] == pytest.approx(1 / 12) for d in _draws(project))
    for who in ("a", "b", "c"):
        sq.assign_more(project, who, n=100)
    counts = Counter(r["feature_id"] for r in project.query("SELECT feature_id FROM assignments"))
    assert set(counts.values()) == {2} and len(counts) == 12


def test_active_order_with_leases(project):
    """The app's lease keeping works in the active order: top_up hands out LOOKAHEAD features
    by draws; passed-over leases are released and not handed out again; an idle lease expires
    and its feature can be drawn again (a second draw row for it)."""
    import datetime as dt

    ids = fill(project, 30)
    settings.set(project, "queue_order", "active")
    sj.ensure_annotator(project, "a")
    assert sq.top_up(project, "a") == sq.LOOKAHEAD
    first = sq.queue(project, "a")
    # the annotator moves past the first feature without judging it: it is released, 1 new one comes
    assert sq.top_up(project, "a", keep=first[1:], avoid=first[:1]) == 1
    now = set(sq.queue(project, "a"))
    assert first[0] not in now and len(now) == sq.LOOKAHEAD
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert sq.release_expired(project, at=later) == sq.LOOKAHEAD
    sj.ensure_annotator(project, "b")
    sq.assign_more(project, "b", n=len(ids))
    drawn = Counter(d["feature_id"] for d in _draws(project) if d["assigned"])
    assert len(sq.queue(project, "b")) == len(ids)
    assert all(drawn[f] >= 1 for f in ids)
    assert any(drawn[f] == 2 for f in now)  # released, then drawn again


def test_queue_order_setting_is_checked(project):
    from saegold.store.errors import StoreError

    with pytest.raises(StoreError, match="must be one of stratified, active"):
        settings.set(project, "queue_order", "random")
    assert settings.load(project).queue_order == "stratified"


def test_uniform_share_is_the_engines():
    from saegold.engine.stats import active

    assert sq.ACTIVE_UNIFORM_SHARE == active.UNIFORM_SHARE


def test_calibrate_reweights_the_active_draws(project, tmp_path, capsys, monkeypatch):
    """End to end: the active queue hands out 40 of 80 features to a and b (overlap 2), they
    judge them; `saegold queue --refresh-active` stores weights; `calibrate --json` reports the
    'all' estimates reweighted by the recorded probabilities (draws used = draws of judged
    features), and the text report shows them."""
    import json
    import random

    from saegold.tui.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    fill(project, 80)
    settings.set(project, "queue_order", "active")
    rng = random.Random(5)
    events = []
    for who in ("a", "b"):
        sj.ensure_annotator(project, who)
        sq.assign_more(project, who, n=40)
        for fid in sq.queue(project, who):
            cat = project.scalar("SELECT category FROM taxonomy_scores WHERE feature_id = ?", [fid])
            events.append(sj.make_event(who, fid, "tier", value=cat if rng.random() < 0.8 else "obscure"))
            for r in project.query("SELECT uuid FROM labels WHERE feature_id = ?", [fid]):
                events.append(sj.make_event(who, fid, "verdict", label_uuid=r["uuid"],
                                            value=rng.choice(["correct", "correct", "partly", "wrong"])))
    sj.append_many(project, events)
    db = str(project.path)
    assert main(["--db", db, "queue", "--refresh-active"]) == 0
    assert "weights of 80 feature(s) refreshed; widest interval:" in capsys.readouterr().out
    assert project.scalar("SELECT COUNT(*) FROM active_weights") == 80
    assert main(["--db", db, "calibrate", "--json", "--bootstrap", "50"]) == 0
    rep = json.loads(capsys.readouterr().out)
    draws = _draws(project)
    rows = {(a["kind"], a["name"], a["target"]): a for a in rep["active"]}
    tier = rows[("tier", "input", "input")]
    assert tier["n_draws"] == len(draws) and tier["n_features"] == 40  # every drawn feature judged
    assert tier["ppi"]["ci"][0] <= tier["ppi"]["value"] <= tier["ppi"]["ci"][1]
    lab = next(a for a in rep["active"] if a["kind"] == "label" and a["target"] == "correct")
    assert lab["ppi"]["ci"] is not None and 0 <= lab["lam"] <= 1
    # the stopping rule of a reweighted estimate: its own width, more draws from its own variance
    assert lab["stopping"]["width"] == pytest.approx(lab["ppi"]["ci"][1] - lab["ppi"]["ci"][0])
    assert lab["stopping"]["target"] == settings.load(project).target_ci_width
    assert lab["stopping"]["more_draws"] is not None or not lab["stopping"]["reachable"]
    assert "Hansen-Hurwitz" in rep["settings"]["rules"]["active_queue"]
    assert any("handed out by the active queue" in n for n in rep["notes"])
    page = tmp_path / "report.html"
    assert main(["--db", db, "calibrate", "--bootstrap", "50", "--html", str(page)]) == 0
    assert "Active queue: 'all' estimates reweighted by the recorded draw probabilities" in capsys.readouterr().out
    html_text = page.read_text()
    assert "more draws to the target width (new features)" in html_text and "Hansen-Hurwitz variance" in html_text
    assert main(["--db", db, "status"]) == 0
    out = capsys.readouterr().out
    assert "Note: some features were handed out by the active queue" in out
    assert "Active queue: reweighted 'all' estimates, 95% CI width now vs target" in out
    assert "more draws to the target width from the Hansen-Hurwitz variance" in out
    assert main(["--db", db, "status", "--json"]) == 0
    stop = json.loads(capsys.readouterr().out)["stopping"]
    assert {(a["kind"], a["name"], a["target"]) for a in stop["active"]} == set(rows)


# -- the sampling weights refresh themselves when missing or stale (issue 16 follow-up) -------

def _weights(project):
    return project.query("SELECT feature_id, weight, updated_at FROM active_weights ORDER BY feature_id")


def _judge_all(project, who, fids, rng):
    events = []
    for fid in fids:
        events.append(sj.make_event(who, fid, "tier", value=rng.choice(["input", "output", "obscure"])))
        for r in project.query("SELECT uuid FROM labels WHERE feature_id = ?", [fid]):
            events.append(sj.make_event(who, fid, "verdict", label_uuid=r["uuid"],
                                        value=rng.choice(["correct", "partly", "wrong"])))
    sj.append_many(project, events)


def test_missing_weights_are_computed_fresh_kept_stale_recomputed(project):
    """Missing weights are computed (and the state says fresh); asking again changes nothing
    (same rows, same time stamp); a new judgment makes them stale and they are recomputed; so
    does a redone benchmark result (archived, new row) and a new label."""
    import random

    from saegold.engine.stats.calibration import refresh_sampling_weights

    ids = fill(project, 40)
    assert sq.active_weights_state(project).state == "missing"
    first = refresh_sampling_weights(project)
    # Nothing judged: no interval yet, no weights stored (uniform draws), and that is current.
    assert (first.before, first.refreshed, first.n) == ("missing", True, 0) and "uniform" in first.why
    assert "computed" in first.line() and sq.active_weights_state(project).state == "fresh"
    stored = _weights(project)
    again = refresh_sampling_weights(project)
    assert (again.before, again.refreshed, again.n) == ("fresh", False, 0)
    assert _weights(project) == stored and "up to date" in again.line()

    sj.ensure_annotator(project, "a")
    _judge_all(project, "a", ids[:30], random.Random(1))
    assert sq.active_weights_state(project).state == "stale"
    redo = refresh_sampling_weights(project)
    assert (redo.before, redo.refreshed, redo.n) == ("stale", True, 40) and "recomputed" in redo.line()
    assert "widest interval" in redo.why
    assert sq.active_weights_state(project).state == "fresh"
    assert len(_weights(project)) == 40 and stored == []

    from saegold.store import superseded

    row = project.query("SELECT label_id, benchmark, control FROM bench_scores LIMIT 1")[0]
    with project.write() as db:   # a redo: the old result archived, a new one written
        superseded.supersede_bench(db, row["label_id"], row["benchmark"], row["control"])
        db.execute("UPDATE bench_scores SET value = 0.9 WHERE label_id = ? AND benchmark = ? AND control = ?",
                   [row["label_id"], row["benchmark"], row["control"]])   # as engine.bench.results's upsert
    assert sq.active_weights_state(project).state == "stale"
    refresh_sampling_weights(project)
    assert sq.active_weights_state(project).state == "fresh"
    lab = project.query("SELECT * FROM labels LIMIT 1")[0]
    with project.write() as db:
        db.execute("UPDATE labels SET superseded_by = 'x', superseded_at = '2026-01-01' WHERE id = ?", [lab["id"]])
    assert sq.active_weights_state(project).state == "stale"
    refresh_sampling_weights(project)
    settings.set(project, "input_threshold", 0.123)   # categories re-derived in place
    assert sq.active_weights_state(project).state == "stale"


def test_settings_set_queue_order_active_computes_the_weights(project, capsys):
    """`settings set queue_order active` computes missing weights and says so; setting it
    again finds them fresh; --refresh-active --if-stale does not recompute fresh ones; status
    says whether they are up to date."""
    import json

    from saegold.tui.cli import main

    fill(project, 24)
    db = str(project.path)
    assert main(["--db", db, "settings", "set", "queue_order", "active"]) == 0
    out = capsys.readouterr().out
    assert "queue_order: stratified -> active" in out
    assert "active queue: sampling weights computed: no estimate has an interval yet" in out
    assert sq.active_weights_state(project).state == "fresh"
    stamp = project.scalar("SELECT computed_at FROM active_weights_state")
    assert main(["--db", db, "queue", "--refresh-active", "--if-stale"]) == 0
    assert "sampling weights up to date" in capsys.readouterr().out
    assert project.scalar("SELECT computed_at FROM active_weights_state") == stamp
    assert main(["--db", db, "queue", "--if-stale"]) == 2
    assert "--if-stale" in capsys.readouterr().err
    assert main(["--db", db, "status"]) == 0
    assert "Active queue: sampling weights up to date" in capsys.readouterr().out
    sj.ensure_annotator(project, "a")
    sj.append_many(project, [sj.make_event("a", sq.active_population(project)[0][0], "tier", value="input")])
    assert main(["--db", db, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["active_weights"]["state"] == "stale"
    assert main(["--db", db, "status"]) == 0
    assert "Active queue: sampling weights stale" in capsys.readouterr().out


def test_the_app_refreshes_missing_weights_in_the_background(project):
    """In the active order the app starts at once (store-only path) and a background process
    computes the missing weights, then the app says so; the stratified order starts none."""
    from apphelp import drive, make_app

    import random

    ids = fill(project, 20)
    sj.ensure_annotator(project, "b")
    _judge_all(project, "b", ids, random.Random(2))
    app = make_app(project, "alice")
    drive(app, [])
    assert app.weights_thread is None and sq.active_weights_state(project).state == "missing"

    settings.set(project, "queue_order", "active")
    app = make_app(project, "alice")

    def wait(app):
        app.weights_thread.join(120)
        return app.weights_note

    note = drive(app, [], after=wait)
    assert note is not None and "sampling weights of 20 feature(s) computed" in note
    assert sq.active_weights_state(project).state == "fresh"
    app = make_app(project, "alice")
    drive(app, [], after=lambda app: app.weights_thread.join(60))
    assert app.weights_note is None   # fresh: no process started, nothing to say
