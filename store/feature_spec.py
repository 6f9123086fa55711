"""The ``--features`` option: its grammar, and the bounds each command holds it to.

Grammar: comma-separated pieces, each an index (``17``) or an inclusive range (``40-49``) of
non-negative whole numbers written in ASCII digits.  Whitespace around a piece and around a
range's ``-`` is ignored.  Refused, each with one line naming the option and the piece: an
empty option or an empty piece (``3,,4``, ``3,``: a stray comma or an empty shell variable), a
negative number, a range that runs backwards (``49-40``), a number past :data:`MAX_INDEX`, and
more than :data:`MAX_INDICES` indices in all (counted before anything is built, so ``0-10**14``
costs nothing).  Duplicates and overlapping ranges are merged; the result is sorted.

Bounds, one wording for every command: ``score`` holds the indices to the SAE's width
(:func:`check_width`); ``label``, ``bench`` and ``score --from-stored`` to the features stored
for the chosen source (:func:`check_stored`, :func:`stored_feature_ids`).  Either refuses with
how many of the requested indices fall outside, and the first few of them.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from .errors import SaegoldError

if TYPE_CHECKING:
    from .db import Project

OPTION = "--features"
MAX_INDEX = 2**63 - 1        # SQLite's largest integer: no stored index can be larger
MAX_INDICES = 2**21          # 2,097,152: twice the widest public SAEs (1M); as a list, ~75 MB
SHOWN = 5                    # offending indices listed in a bound error

_PIECE = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", re.ASCII)
_SIGNED = re.compile(r"\s*-?\s*[0-9]+\s*(?:-\s*-?\s*[0-9]+\s*)?", re.ASCII)


class FeatureSpecError(SaegoldError):
    """A ``--features`` value is malformed, or names indices the command cannot use."""


def parse_feature_spec(spec: str, *, option: str = OPTION) -> list[int]:
    """The sorted, de-duplicated indices ``spec`` names (``"3,17,40-49"``); see the module doc."""
    if not spec.strip():
        raise FeatureSpecError(f"{option}: no indices given (write e.g. 3,17,40-49)")
    spans: list[tuple[int, int]] = []
    total = 0
    for piece in spec.split(","):
        if not piece.strip():
            raise FeatureSpecError(f"{option}: {_quote(spec)} has an empty piece (a stray comma?)")
        m = _PIECE.fullmatch(piece)
        if m is None:
            if _SIGNED.fullmatch(piece):
                raise FeatureSpecError(f"{option}: {_quote(piece)} is negative; indices start at 0")
            raise FeatureSpecError(f"{option}: {_quote(piece)} is not an index or a range like 40-49")
        lo, hi = (_number(d, piece, option) for d in (m.group(1), m.group(2) or m.group(1)))
        if hi < lo:
            raise FeatureSpecError(f"{option}: {_quote(piece)} runs backwards (write {hi}-{lo})")
        total += hi - lo + 1
        if total > MAX_INDICES:
            raise FeatureSpecError(f"{option}: {_quote(piece)} makes {total:,} indices in all; "
                                   f"at most {MAX_INDICES:,} are accepted")
        spans.append((lo, hi))
    out: list[int] = []
    for lo, hi in sorted(spans):        # merged in order: no set of every index on the way
        if not out or hi > out[-1]:
            out.extend(range(lo if not out else max(lo, out[-1] + 1), hi + 1))
    return out


def _quote(text: str, most: int = 40) -> str:
    """The offending text as it was typed (repr, so nothing in it is interpreted), cut short.
    Only the whitespace the grammar ignores (ASCII) is stripped: a no-break space stays
    visible, so ``'\\xa03'`` is not shown as a bare ``'3'``."""
    text = text.strip(" \t\n\r\f\v")
    return repr(text if len(text) <= most else text[:most - 3] + "...")


def _number(digits: str, piece: str, option: str) -> int:
    # Length first: int() of thousands of digits is slow, or refused outright; leading zeros
    # are dropped before int() for the same reason (0000...05 is 5, however many zeros).
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(MAX_INDEX)) or int(digits) > MAX_INDEX:
        raise FeatureSpecError(f"{option}: {_quote(piece)} is past the largest possible index ({MAX_INDEX:,})")
    return int(digits)


def refuse(outside: Sequence[int], requested: int, why: str, *, option: str = OPTION) -> FeatureSpecError:
    """The one bound error: how many of the ``requested`` indices are ``why``, and the first few
    (``--features: 12 of the 20 requested indices are not stored for source X: 40, 41, 42, 43, 44
    and 7 more``); a single requested index is named alone."""
    if requested == 1:
        return FeatureSpecError(f"{option}: index {outside[0]} is {why}")
    listing = ", ".join(str(i) for i in outside[:SHOWN])
    if len(outside) > SHOWN:
        listing += f" and {len(outside) - SHOWN:,} more"
    verb = "is" if len(outside) == 1 else "are"
    return FeatureSpecError(f"{option}: {len(outside):,} of the {requested:,} requested indices {verb} "
                            f"{why}: {listing}")


def check_width(indices: Sequence[int], width: int, *, option: str = OPTION) -> None:
    """Refuse indices outside an SAE of ``width`` features (0 to width - 1)."""
    outside = [i for i in indices if not 0 <= i < width]
    if outside:
        raise refuse(outside, len(indices), f"outside the SAE's width of {width:,} (indices 0-{width - 1:,})",
                     option=option)


def check_stored(indices: Sequence[int], stored: Collection[int], source: str | None, *,
                 option: str = OPTION) -> None:
    """Refuse indices that are not in ``stored``, the indices stored for ``source`` (None: any)."""
    missing = [i for i in indices if i not in stored]
    if missing:
        where = f"for source {source}" if source is not None else "in this project"
        raise refuse(missing, len(indices), f"not stored {where}", option=option)


def stored_feature_ids(project: Project, indices: Sequence[int], source: str | None = None, *,
                       option: str = OPTION) -> list[int]:
    """Ids of the stored features at ``indices`` (of ``source``, or of every source when None);
    refuses an unknown source and any index not stored for it (:func:`check_stored`)."""
    if source is not None and not project.scalar("SELECT 1 FROM sources WHERE name = ?", [source]):
        raise FeatureSpecError(f"--source {source!r}: no such source in this project")
    if not indices:
        return []
    sql = ("SELECT f.id, f.idx FROM features f JOIN sources s ON s.id = f.source_id "
           "WHERE f.idx BETWEEN ? AND ?")   # one range, not IN (...): no limit on SQL variables
    params: list = [min(indices), max(indices)]
    if source is not None:
        sql += " AND s.name = ?"
        params.append(source)
    wanted = set(indices)
    rows = [r for r in project.query(sql, params) if r["idx"] in wanted]
    check_stored(indices, {r["idx"] for r in rows}, source, option=option)
    return sorted(r["id"] for r in rows)
