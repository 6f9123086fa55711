"""Random damage to real records: the import either succeeds or raises BadInput, and then
the database is exactly as it was.  Never another exception, never a partial write."""
from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saegold.store.errors import BadInput
from saegold.store.importers.judgments import import_judgments
from saegold.store.importers.neuronpedia import import_neuronpedia

from store_samples import FULL_FILES, dump, load, needs_samples

pytestmark = needs_samples

SAMPLE = load(FULL_FILES[0])
SAMPLE["activations"] = SAMPLE["activations"][:4]  # keep each example quick

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _paths(doc) -> list[tuple]:
    out = [(k,) for k in doc]
    out += [("activations", 1, k) for k in doc["activations"][1]]
    out += [("activations", 1, "tokens", 3), ("activations", 1, "values", 3), ("pos_values", 2)]
    out += [("explanations", 0, k) for k in doc["explanations"][0]]
    return out


PATHS = _paths(SAMPLE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=json_values, delete=st.booleans())
def test_damaged_feature_record(project, tmp_path, path, value, delete):
    doc = copy.deepcopy(SAMPLE)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    f = tmp_path / "damaged.json"
    f.write_text(json.dumps(doc), encoding="utf-8")  # json.dumps writes NaN/Infinity as JS does
    before = dump(project)
    try:
        import_neuronpedia(project, [f])
    except BadInput as exc:
        assert exc.file == str(f) and "\n" not in str(exc)
        assert dump(project) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=st.dictionaries(
    st.sampled_from(["uuid", "annotator", "source", "feature", "kind", "value", "method", "label_uuid",
                     "confidence", "target_uuid", "seconds_spent", "created_at", "login"]),
    json_values | st.sampled_from(["tier", "verdict", "input", "correct", "m/s", "2026-01-01T00:00:00Z"]),
    max_size=8))
def test_damaged_judgment_record(project, tmp_path, record):
    f = tmp_path / "j.jsonl"
    f.write_text(json.dumps(record) + "\n", encoding="utf-8")
    before = dump(project)
    try:
        import_judgments(project, [f])
    except BadInput as exc:
        assert exc.record == "line 1"
        assert dump(project) == before
