"""The ``--features`` grammar (store.feature_spec) and the bounds every command holds it to."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saegold.store import feature_spec
from saegold.store.errors import SaegoldError
from saegold.store.feature_spec import (FeatureSpecError, check_stored, check_width, parse_feature_spec,
                                stored_feature_ids)
from saegold.store.features import get_or_create_source, upsert_feature


# -- grammar: what parses -------------------------------------------------------------------
@pytest.mark.parametrize("spec, expected", [
    ("3", [3]),
    ("0", [0]),
    ("3,17,40-44", [3, 17, 40, 41, 42, 43, 44]),
    ("40-40", [40]),
    ("5,3,3,1", [1, 3, 5]),                       # sorted, duplicates merged
    ("0-4,2-6", [0, 1, 2, 3, 4, 5, 6]),           # overlapping ranges merged
    ("4-6,0-9", list(range(10))),                 # a range inside another
    (" 3 , 17 ,\t40 - 42 ", [3, 17, 40, 41, 42]),  # whitespace around pieces and the dash
    ("007,08-9", [7, 8, 9]),                      # leading zeros are the same numbers
    pytest.param("0" * 5000 + "5", [5], id="5000-leading-zeros"),   # int() refuses 4300+ digits
    pytest.param("0" * 5000 + "-0" + "0" * 5000 + "2", [0, 1, 2], id="5000-leading-zeros-range"),
])
def test_parses(spec, expected):
    assert parse_feature_spec(spec) == expected


def _written(draw, indices: list[int]) -> str:
    """``indices`` written out as a spec in one of many ways: runs as ranges or not, pieces in
    any order, some repeated, whitespace sprinkled around pieces and dashes."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(indices)):
        if runs and runs[-1][1] == i - 1 and draw(st.booleans()):
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    space = st.sampled_from(["", "", " ", "  ", "\t"])
    pieces = []
    for lo, hi in runs:
        piece = str(lo) if lo == hi and draw(st.booleans()) else f"{lo}{draw(space)}-{draw(space)}{hi}"
        pieces.append(f"{draw(space)}{piece}{draw(space)}")
    pieces += draw(st.lists(st.sampled_from(pieces), max_size=3))   # repeats
    return ",".join(draw(st.permutations(pieces)))


@settings(max_examples=300, deadline=None)
@given(st.data(), st.lists(st.integers(0, 10**6), min_size=1, max_size=40)
       | st.lists(st.integers(0, 60), min_size=1, max_size=60))   # the second: many runs to join
def test_written_out_indices_parse_back_to_themselves(data, indices):
    spec = _written(data.draw, indices)
    assert parse_feature_spec(spec) == sorted(set(indices)), spec


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789-, \t+x_٣.") , max_size=25))
def test_any_text_parses_to_sorted_indices_or_one_line_error(text):
    try:
        out = parse_feature_spec(text)
    except FeatureSpecError as exc:
        msg = str(exc)
        assert msg.startswith("--features: ") and "\n" not in msg
        return
    assert out and out == sorted(set(out)) and min(out) >= 0


# -- grammar: what is refused, in these words ----------------------------------------------
@pytest.mark.parametrize("spec, message", [
    ("", "--features: no indices given (write e.g. 3,17,40-49)"),
    ("  ", "--features: no indices given (write e.g. 3,17,40-49)"),
    ("3,,4", "--features: '3,,4' has an empty piece (a stray comma?)"),
    ("3,", "--features: '3,' has an empty piece (a stray comma?)"),
    (",3", "--features: ',3' has an empty piece (a stray comma?)"),
    ("3, ,4", "--features: '3, ,4' has an empty piece (a stray comma?)"),
    ("40-x", "--features: '40-x' is not an index or a range like 40-49"),
    ("40-", "--features: '40-' is not an index or a range like 40-49"),
    ("4 0", "--features: '4 0' is not an index or a range like 40-49"),
    ("1-2-3", "--features: '1-2-3' is not an index or a range like 40-49"),
    ("+3", "--features: '+3' is not an index or a range like 40-49"),
    ("1_000", "--features: '1_000' is not an index or a range like 40-49"),
    ("3.5", "--features: '3.5' is not an index or a range like 40-49"),
    ("\u0663", "--features: '\u0663' is not an index or a range like 40-49"),   # ASCII digits only
    ("-3", "--features: '-3' is negative; indices start at 0"),
    ("1, -3-5", "--features: '-3-5' is negative; indices start at 0"),
    ("3--5", "--features: '3--5' is negative; indices start at 0"),
    ("49-40", "--features: '49-40' runs backwards (write 40-49)"),
    ("0-99999999999999", "--features: '0-99999999999999' makes 100,000,000,000,000 indices in all; "
                         "at most 2,097,152 are accepted"),
    ("99999999999999999999", "--features: '99999999999999999999' is past the largest possible index "
                             "(9,223,372,036,854,775,807)"),
    ("1-" + "9" * 5000, "is past the largest possible index"),      # no 5000-digit int() on the way
    ("x" * 100, "--features: '" + "x" * 37 + "...' is not an index"),   # the echo is cut short
    ("a\x1b[2Jb", "--features: 'a\\x1b[2Jb' is not an index"),        # shown, never interpreted
    ("\u00a03", "--features: '\\xa03' is not an index"),   # a no-break space is shown, not dropped
    ("1,3\u2003", "--features: '3\\u2003' is not an index"),
])
def test_refused(spec, message):
    with pytest.raises(FeatureSpecError) as exc:
        parse_feature_spec(spec)
    assert message in str(exc.value)
    assert isinstance(exc.value, SaegoldError)   # the CLI's one-line error, exit 2


def test_the_option_is_named_as_given():
    with pytest.raises(FeatureSpecError, match=r"^--only: '9-1' runs backwards"):
        parse_feature_spec("9-1", option="--only")


def test_too_many_indices_counted_over_all_pieces_before_building(monkeypatch):
    monkeypatch.setattr(feature_spec, "MAX_INDICES", 10)
    assert parse_feature_spec("0-9") == list(range(10))
    with pytest.raises(FeatureSpecError, match=r"'0-10' makes 11 indices in all; at most 10 are accepted"):
        parse_feature_spec("0-10")
    with pytest.raises(FeatureSpecError, match=r"'20-24' makes 11 indices in all"):
        parse_feature_spec("0-5,20-24")


# -- bounds: one wording --------------------------------------------------------------------
def test_check_width():
    check_width([0, 5, 63], 64)
    with pytest.raises(FeatureSpecError) as exc:
        check_width([64], 64)
    assert str(exc.value) == "--features: index 64 is outside the SAE's width of 64 (indices 0-63)"
    with pytest.raises(FeatureSpecError) as exc:
        check_width(list(range(60, 72)), 64)
    assert str(exc.value) == ("--features: 8 of the 12 requested indices are outside the SAE's width of 64 "
                              "(indices 0-63): 64, 65, 66, 67, 68 and 3 more")
    with pytest.raises(FeatureSpecError, match=r"1 of the 2 requested indices is outside .*: -1$"):
        check_width([-1, 3], 64)                  # a list given to the API, not parsed text


def test_check_stored():
    check_stored([1, 3], {1, 2, 3}, "m/s")
    with pytest.raises(FeatureSpecError) as exc:
        check_stored([7], {1, 2, 3}, "m/s")
    assert str(exc.value) == "--features: index 7 is not stored for source m/s"
    with pytest.raises(FeatureSpecError) as exc:
        check_stored([1, 2, 3, 4, 5], {1, 2, 3}, None)
    assert str(exc.value) == "--features: 2 of the 5 requested indices are not stored in this project: 4, 5"
    with pytest.raises(FeatureSpecError) as exc:
        check_stored(list(range(40, 60)), set(range(40, 48)), "m/s")
    assert str(exc.value) == ("--features: 12 of the 20 requested indices are not stored for source m/s: "
                              "48, 49, 50, 51, 52 and 7 more")


@pytest.fixture
def two_sources(project):
    """m/a stores 0-4 and 10; m/b stores 3-6."""
    ids = {}
    with project.write() as db:
        for sae, idxs in (("a", [0, 1, 2, 3, 4, 10]), ("b", [3, 4, 5, 6])):
            sid = get_or_create_source(db, "m", sae)
            for i in idxs:
                ids[sae, i] = upsert_feature(db, sid, i)
    return project, ids


def test_stored_feature_ids(two_sources):
    project, ids = two_sources
    assert stored_feature_ids(project, [1, 3, 10], "m/a") == sorted([ids["a", 1], ids["a", 3], ids["a", 10]])
    assert stored_feature_ids(project, [4, 6], None) == sorted([ids["a", 4], ids["b", 4], ids["b", 6]])
    assert stored_feature_ids(project, [], "m/b") == []
    with pytest.raises(FeatureSpecError) as exc:
        stored_feature_ids(project, parse_feature_spec("3-10"), "m/b")
    assert str(exc.value) == ("--features: 4 of the 8 requested indices are not stored for source m/b: "
                              "7, 8, 9, 10")
    with pytest.raises(FeatureSpecError) as exc:        # stored somewhere, but not for this source
        stored_feature_ids(project, [10], "m/b")
    assert str(exc.value) == "--features: index 10 is not stored for source m/b"
    with pytest.raises(FeatureSpecError) as exc:        # no source holds 7-9
        stored_feature_ids(project, parse_feature_spec("5-10"), None)
    assert str(exc.value) == "--features: 3 of the 6 requested indices are not stored in this project: 7, 8, 9"
    with pytest.raises(FeatureSpecError, match=r"^--source 'm/zz': no such source in this project$"):
        stored_feature_ids(project, [1], "m/zz")
