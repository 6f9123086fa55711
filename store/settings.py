"""Project settings: one typed object, parsed and checked once from the ``settings`` table.

The ``settings`` table holds a JSON value for each key a project has changed; every other key
has the default declared in :class:`Settings`.  Code reads the settings as one frozen object::

    cfg = settings.load(project)        # every stored value checked; a bad one is one line
    cfg.overlap, cfg.input_threshold    # already int, float, ... : no casts at call sites

and changes them with :func:`change` (``saegold settings set``, ``calibrate --store-thresholds``),
which checks each new value with the same rule, writes it and re-derives what depends on it,
in one transaction, and returns what changed.  This module is the one owner of settings
validation: the rule for a key lives in its field here and nowhere else.

Adding a setting is a one-place change -- one field of :class:`Settings`::

    lease_minutes: int = setting(
        30, whole(at_least=1), "minutes an idle annotator keeps the features handed out",
        group="annotation", effect="applies to features handed out from now on")

``setting(default, rule, help, *, group, effect | rederive)`` takes the default, a rule (how
the JSON value is checked and how command-line text becomes one: :func:`number`,
:func:`whole`, :func:`flag`, :func:`text`, :func:`url`, :func:`env_name`, :func:`file_path`,
:func:`optional`, or a new :class:`Rule`), one line of help (``saegold settings`` lists it),
and what a change does: a sentence (``effect``), or a function ``rederive(project, new) -> str``
that runs inside the change's transaction, updates the rows derived from the setting and says
what it changed (``new`` maps every key to its checked new value).  ``saegold settings``,
``init`` and ``merge`` pick the new field up from here; add it to README's "Project settings".
"""
from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .db import Project, dumps, loads
from .errors import StoreError
from .examples import has_top
from .features import CATEGORIES, recategorize

# The label methods `saegold label` can make (engine/labeling/methods.py defines them; a test
# keeps the two lists equal).  Imported labels may carry other method names, but routing
# names methods to run.
LABEL_METHODS = ("eleuther_acts_top5", "baez", "baez_last", "output_logits")


# -- rules: how a value is checked, and how command-line text becomes one ---------------------
@dataclass(frozen=True)
class Rule:
    """``check``: JSON value -> typed value, raising ValueError(cause); ``from_text``: the text
    given to ``saegold settings set`` -> a JSON value (then checked); ``kind``: what it takes."""
    check: Callable[[Any], Any]
    from_text: Callable[[str], Any]
    kind: str


def _number_text(text: str) -> Any:
    try:
        return float(text) if any(c in text.lower() for c in ".en") else int(text)
    except ValueError:
        raise ValueError("is not a number") from None


def number(*, at_least: float | None = None, above: float | None = None) -> Rule:
    """A finite real number (``at_least`` / ``above`` bound it from below)."""
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("must be a number")
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        if at_least is not None and v < at_least:
            raise ValueError(f"must be at least {at_least:g}")
        if above is not None and v <= above:
            raise ValueError(f"must be greater than {above:g}")
        return float(v)
    bound = f" >= {at_least:g}" if at_least is not None else f" > {above:g}" if above is not None else ""
    return Rule(check, _number_text, "number" + bound)


def fraction_width() -> Rule:
    """A CI width on the share scale: a number in (0, 1]."""
    def check(v: Any) -> float:
        v = number(above=0).check(v)
        if v > 1:
            raise ValueError("must be at most 1 (a width on the 0..1 share scale, e.g. 0.1 = ±5 points)")
        return v
    return Rule(check, _number_text, "number in (0, 1]")


def choice(*options: str) -> Rule:
    """One of ``options``."""
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return v
    return Rule(check, lambda t: t.strip(), " | ".join(options))


def whole(*, at_least: int) -> Rule:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
            raise ValueError("must be a whole number")
        if v < at_least:
            raise ValueError(f"must be at least {at_least}")
        return int(v)

    def from_text(text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            raise ValueError("is not a whole number") from None
    return Rule(check, from_text, f"whole number >= {at_least}")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def flag() -> Rule:
    def check(v: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError("must be true or false")
        return v

    def from_text(text: str) -> Any:
        t = text.strip().lower()
        if t in _TRUE or t in _FALSE:
            return t in _TRUE
        raise ValueError("must be true or false (or yes/no, on/off, 1/0)")
    return Rule(check, from_text, "true | false")


def text() -> Rule:
    """A non-empty string."""
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("must be a string")
        if not v.strip():
            raise ValueError("must not be empty")
        return v
    return Rule(check, lambda t: t, "text")


def url() -> Rule:
    """An http(s) URL with a host."""
    def check(v: Any) -> str:
        v = text().check(v)
        if not re.match(r"^https?://[^/\s?#]+", v) or any(c.isspace() for c in v):
            raise ValueError("must be an http:// or https:// URL with a host, without spaces")
        return v
    return Rule(check, lambda t: t.strip(), "URL")


def env_name() -> Rule:
    """The NAME of an environment variable (keys themselves never enter the project)."""
    def check(v: Any) -> str:
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be the name of an environment variable (letters, digits, _), "
                             "not the key itself")
        if v.lower().startswith(("sk-", "sk_")) or (len(v) >= 32 and any(c.isdigit() for c in v)):
            raise ValueError("looks like an API key, not the name of the variable holding it; "
                             "keys are never stored in the project")
        return v
    return Rule(check, lambda t: t.strip(), "environment variable name")


def file_path() -> Rule:
    """A path to a readable UTF-8 text file.  A stored relative path is taken relative to the
    project file; text given on the command line is taken relative to the current directory
    and stored absolute, after checking that it can be read."""
    def check(v: Any) -> str:
        return text().check(v)

    def from_text(t: str) -> Any:
        path = Path(t).expanduser().absolute()
        try:
            path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot be read as UTF-8 text ({exc.__class__.__name__})") from None
        return str(path)
    return Rule(check, from_text, "path to a text file")


def optional(rule: Rule) -> Rule:
    """``rule``, or null (``none`` on the command line)."""
    def from_text(t: str) -> Any:
        return None if t.strip().lower() in ("none", "null", "") else rule.from_text(t)
    return Rule(lambda v: None if v is None else rule.check(v), from_text, f"{rule.kind} | none")


def routing() -> Rule:
    """Category -> label methods, e.g. ``{"input": ["eleuther_acts_top5"], ...}``.  A category
    left out gets no labels; methods are kept in order, duplicates dropped."""
    def check(v: Any) -> dict[str, tuple[str, ...]]:
        if not isinstance(v, dict):
            raise ValueError("must map each category to a list of methods, e.g. "
                             '{"input": ["eleuther_acts_top5", "baez"], "obscure": []}')
        extra = sorted(k for k in v if k not in CATEGORIES)   # (`set` is this module's)
        if extra:
            raise ValueError(f"unknown category {extra[0]!r} (categories: {', '.join(CATEGORIES)})")
        out: dict[str, tuple[str, ...]] = {}
        for category in CATEGORIES:
            methods = v.get(category, [])
            if not isinstance(methods, (list, tuple)) or not all(isinstance(m, str) for m in methods):
                raise ValueError(f"{category!r} must be a list of method names")
            unknown = [m for m in methods if m not in LABEL_METHODS]
            if unknown:
                raise ValueError(f"{category!r} names unknown method {unknown[0]!r} "
                                 f"(known: {', '.join(LABEL_METHODS)})")
            out[category] = tuple(dict.fromkeys(methods))
        return out

    return Rule(check, _json_text("a JSON object"), "JSON object: category -> [methods]")


def _json_text(what: str) -> Callable[[str], Any]:
    """A rule's parser of JSON text, naming ``what`` was expected when the text is not JSON."""
    def from_text(t: str) -> Any:
        try:
            return json.loads(t)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not {what} ({exc.msg} at column {exc.colno})") from None
    return from_text


def _distinct(values: tuple) -> tuple:
    """``values``, refused where one repeats."""
    if len(dict.fromkeys(values)) != len(values):   # (`set` is this module's)
        raise ValueError("must not repeat a value")
    return values


def number_list(*, above: float) -> Rule:
    """A non-empty JSON list of distinct finite numbers, each greater than ``above``."""
    def check(v: Any) -> tuple[float, ...]:
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError("must be a non-empty list of numbers, e.g. [0.25, 0.5]")
        out = tuple(number(above=above).check(x) for x in v)
        return _distinct(out)

    def from_text(t: str) -> Any:
        try:
            return json.loads(t) if t.strip().startswith("[") else [_number_text(x.strip()) for x in t.split(",")]
        except ValueError as exc:
            raise ValueError(f"is not a list of numbers ({exc})") from None
    return Rule(check, from_text, f"list of numbers > {above:g}")


def text_list() -> Rule:
    """A non-empty JSON list of distinct non-empty strings."""
    def check(v: Any) -> tuple[str, ...]:
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError('must be a non-empty list of strings, e.g. ["I think", "We"]')
        out = tuple(text().check(x) for x in v)
        return _distinct(out)

    return Rule(check, _json_text("a JSON list of strings"), "JSON list of strings")


# -- the settings -----------------------------------------------------------------------------
def setting(default: Any, rule: Rule, help: str, *, group: str,  # noqa: A002 - the field's help
            effect: str | None = None, rederive: Callable[[Project, Mapping[str, Any]], str] | None = None):
    """One field of :class:`Settings`; see the module docstring."""
    meta = {"rule": rule, "help": help, "group": group, "effect": effect, "rederive": rederive,
            "default": default}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: rule.check(copy.deepcopy(default)), metadata=meta)
    return field(default=default, metadata=meta)


def _recategorize(project: Project, new: Mapping[str, Any]) -> str:
    """Re-derive every stored category from the new thresholds; say how many moved where."""
    t_in, t_out = new["input_threshold"], new["output_threshold"]
    before = dict(project.db.execute("SELECT feature_id, category FROM taxonomy_scores").fetchall())
    recategorize(project, t_in, t_out)
    after = dict(project.db.execute("SELECT feature_id, category FROM taxonomy_scores").fetchall())
    moves = Counter((before[f], after[f]) for f in after if before.get(f) != after[f])
    scored = sum(1 for c in after.values() if c is not None)
    line = (f"re-derived the category of {scored:,} scored feature(s): "
            + (f"{sum(moves.values()):,} moved (" + ", ".join(
                f"{a or 'none'} -> {b or 'none'} {n:,}" for (a, b), n in sorted(
                    moves.items(), key=lambda kv: (-kv[1], str(kv[0])))) + ")" if moves else "none moved"))
    odd = [f"{k} {new[k]:g}" for k in ("input_threshold", "output_threshold") if not 0 <= new[k] <= 1]
    if odd:
        line += (f"; note: scores lie in [0, 1], so {' and '.join(odd)} "
                 "lets every feature pass or none")
    return line


def _scored_note(what: str) -> Callable[[Project, Mapping[str, Any]], str]:
    def note(project: Project, new: Mapping[str, Any]) -> str:
        n = project.db.execute("SELECT COUNT(*) FROM taxonomy_scores WHERE output_score IS NOT NULL "
                               "OR input_score IS NOT NULL").fetchone()[0]
        if not n:
            return f"used by the next `saegold score` ({what})"
        return (f"{n:,} feature(s) keep the scores made with the old value; `saegold score --redo` "
                f"on the model recomputes them ({what})")
    return note


def _overlap_note(project: Project, new: Mapping[str, Any]) -> str:
    k = new["overlap"]
    total, enough = project.db.execute(
        "SELECT COUNT(*), COALESCE(SUM(n >= ?), 0) FROM (SELECT f.id, (SELECT COUNT(DISTINCT j.annotator) "
        "FROM judgments j WHERE j.feature_id = f.id AND j.kind = 'tier') AS n FROM features f "
        f"WHERE {has_top('f.id')} = 1)",
        [k]).fetchone()
    if not total:
        return f"each feature will go to {k} annotator(s) (no feature has activating examples yet)"
    return (f"each feature now goes to {k} annotator(s): {enough:,} of {total:,} judgeable feature(s) "
            f"already have a tier from {k} or more; the others are handed out until they do "
            "(features already handed out stay with their annotators)")


_STEER_EFFECT = ("the next `saegold score` redoes the steered continuations made with other settings "
                 "(the steering benchmark then judges the new ones)")


@dataclass(frozen=True)
class Settings:
    """The project's settings, checked.  Build with :func:`load`; change with :func:`change`."""

    input_threshold: float = setting(
        0.5, number(), "input score at or above which a feature counts as input (cross if output too)",
        group="taxonomy", rederive=_recategorize)
    output_threshold: float = setting(
        0.01, number(), "output score at or above which a feature counts as output (cross if input too)",
        group="taxonomy", rederive=_recategorize)
    neutral_prompt: str = setting(
        "From my experience,", text(), "prompt whose last position the output score amplifies",
        group="scoring", rederive=_scored_note("output scores and their evidence"))
    amplification: float = setting(
        10.0, number(above=0), "amp: f[j] += amp * max(f) at the neutral prompt's last position",
        group="scoring", rederive=_scored_note("output scores and their evidence"))
    logit_lens_k: int = setting(
        20, whole(at_least=1), "promoted tokens per feature in the logit lens LL_j",
        group="scoring", rederive=_scored_note("logit lens, input and output scores"))
    steering_targets: tuple = setting(
        [0.25, 0.5], number_list(above=0), "KL(clean || steered) targets in nats the steering alpha is sought at",
        group="scoring", effect=_STEER_EFFECT)
    steering_prompts: tuple = setting(
        ["The explanation is simple:", "I think", "We"], text_list(), "prompts the steered continuations start from",
        group="scoring", effect=_STEER_EFFECT)
    steering_tokens: int = setting(
        25, whole(at_least=1), "tokens sampled per steered continuation",
        group="scoring", effect=_STEER_EFFECT)
    steering_temperature: float = setting(
        0.75, number(at_least=0), "sampling temperature of the steered continuations (0: greedy)",
        group="scoring", effect=_STEER_EFFECT)
    label_routing: dict = setting(
        {"input": ["eleuther_acts_top5", "baez"], "output": ["output_logits", "baez"],
         "cross": ["eleuther_acts_top5", "baez", "baez_last", "output_logits"], "obscure": []},
        routing(), "category -> label methods for `saegold label --by-tier`",
        group="labeling", effect="applies to the next `saegold label --by-tier`; labels already made are kept")
    llm_base_url: str | None = setting(
        None, optional(url()), "OpenAI-compatible endpoint of `label` and `bench` (none: OpenAI)",
        group="llm", effect="the default of the next `label` / `bench` (--base-url overrides it)")
    llm_model: str = setting(
        "gpt-4o-mini", text(), "model of `label` and `bench`",
        group="llm", effect="the default of the next `label` / `bench` (--model overrides it)")
    llm_api_key_env: str = setting(
        "OPENAI_API_KEY", env_name(), "NAME of the environment variable holding the API key",
        group="llm", effect="the default of the next `label` / `bench` (--api-key-env overrides it)")
    nla_url: str | None = setting(
        None, optional(url()), "NLA explanation service (Neuronpedia's NLA explain shape)",
        group="nla", effect="the default of the next `saegold label` (--nla-url overrides it)")
    nla_model_id: str | None = setting(
        None, optional(text()), "model id sent to the NLA service (none: the source's model id)",
        group="nla", effect="the default of the next `saegold label` (--nla-model overrides it)")
    nla_source_id: str | None = setting(
        None, optional(text()), "NLA source id; also names the stored explanations",
        group="nla", effect="the default of the next `saegold label` (--nla-source overrides it)")
    overlap: int = setting(
        2, whole(at_least=1), "annotators each feature goes to",
        group="annotation", rederive=_overlap_note)
    blind: bool = setting(
        True, flag(), "hide method names, predicted category and scores until a feature is done",
        group="annotation", effect="takes effect when an annotator next starts `saegold annotate`")
    guidelines_path: str | None = setting(
        None, optional(file_path()), "Markdown guidelines shown to annotators (none: the built-in ones)",
        group="annotation", effect="shown when an annotator next starts `saegold annotate`")
    lease_idle_minutes: float = setting(
        30.0, number(above=0), "minutes a feature handed out but not judged yet stays held "
        "without a key from its annotator (then it returns to the pool: `saegold queue`)",
        group="annotation", effect="applies to every lease at the next top-up of any annotator")
    queue_order: str = setting(
        "stratified", choice("stratified", "active"), "order of fresh features: stratified (categories take "
        "turns, random within each) or active (drawn with probability favouring where a verdict shrinks the "
        "widest interval, 20% uniform; the weights are recomputed when missing or stale by this setting, by "
        "`saegold annotate` in the background and by `saegold queue --refresh-active`; estimates are "
        "reweighted by the recorded probabilities)",
        group="annotation", effect="applies to features handed out from now on")
    target_ci_width: float = setting(
        0.10, fraction_width(), "stopping rule: the 95% CI width each estimated share should reach "
        "(`status` and `calibrate` say about how many more judged features get there)",
        group="annotation", effect="the next `status` / `calibrate` measures against it")


KEYS: tuple[str, ...] = tuple(f.name for f in fields(Settings))
_FIELDS = {f.name: f for f in fields(Settings)}
DEFAULTS: dict[str, Any] = {
    f.name: copy.deepcopy(f.metadata["default"]) for f in fields(Settings)}


def rule(key: str) -> Rule:
    return _FIELDS[_known(key)].metadata["rule"]


def help_of(key: str) -> str:
    return _FIELDS[_known(key)].metadata["help"]


def group_of(key: str) -> str:
    return _FIELDS[_known(key)].metadata["group"]


def _known(key: str) -> str:
    if key in _FIELDS:
        return key
    close = difflib.get_close_matches(key, KEYS, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise StoreError(f"unknown setting {key!r} ({hint}known: {', '.join(KEYS)})")


def check(key: str, value: Any) -> Any:
    """``value`` checked for ``key`` (the typed value); StoreError names the key and the cause."""
    try:
        return rule(key).check(value)
    except ValueError as exc:
        raise StoreError(f"setting {key}: {exc} (got {_shown(value)})") from None


def from_text(key: str, raw: str) -> Any:
    """Command-line text for ``key`` -> its typed value, checked."""
    try:
        value = rule(key).from_text(raw)
    except ValueError as exc:
        raise StoreError(f"setting {key}: {raw!r} {exc}" if str(exc).startswith("is ")
                         else f"setting {key}: {exc} (got {raw!r})") from None
    return check(key, value)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)


def stored(project: Project) -> dict[str, Any]:
    """The raw JSON values the project stores (changed keys only; unknown keys included)."""
    return {r["key"]: loads(r["value"]) for r in project.query("SELECT key, value FROM settings")}


def load(project: Project) -> Settings:
    """The project's settings, every stored value checked (unknown stored keys, e.g. from a
    newer saegold, are ignored).  A bad stored value is one line naming the key."""
    return parse(stored(project), where=str(project.path))


def parse(raw: Mapping[str, Any], *, where: str) -> Settings:
    """:class:`Settings` from stored JSON values (key -> value); ``where`` names the project
    in the error."""
    values = {}
    for key in KEYS:
        if key in raw:
            try:
                values[key] = rule(key).check(raw[key])
            except ValueError as exc:
                raise StoreError(f"{where}: setting {key}: stored value {_shown(raw[key])} {exc}; "
                                 f"fix it with `saegold settings set {key} VALUE`") from None
    return Settings(**values)


def get(project: Project, key: str) -> Any:
    """One setting's checked value (``load(project).KEY`` reads them all at once)."""
    return getattr(load(project), _known(key))


def as_json(value: Any) -> Any:
    """A setting's value as plain JSON (tuples become lists)."""
    return json.loads(dumps(value))


def as_text(value: Any) -> str:
    """A value the way ``saegold settings set`` takes it: strings bare, ``none``, JSON else."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(as_json(value), ensure_ascii=False)


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any
    effect: str      # what the change did or will do ("" when the value did not change)

    @property
    def changed(self) -> bool:
        return dumps(self.old) != dumps(self.new)


class _New(Mapping):
    """Every key's new value, checked on access (so one bad stored key elsewhere does not
    block a change that does not need it)."""

    def __init__(self, project: Project, updates: Mapping[str, Any]):
        self.raw = {**stored(project), **updates}

    def __getitem__(self, key: str) -> Any:
        return check(key, self.raw[key]) if key in self.raw else copy.deepcopy(DEFAULTS[key])

    def __iter__(self):
        return iter(KEYS)

    def __len__(self) -> int:
        return len(KEYS)


DEFAULT = object()   # a value for :func:`change`: back to the default (the stored row goes)


def change(project: Project, updates: Mapping[str, Any]) -> list[Change]:
    """Check, write and re-derive ``updates`` (key -> value, or :data:`DEFAULT`) in one
    transaction; return what changed.  Each re-derivation runs once even when several of its
    keys change (both thresholds)."""
    checked = {_known(key): copy.deepcopy(DEFAULTS[key]) if value is DEFAULT else check(key, value)
               for key, value in updates.items()}
    reset = {key for key, value in updates.items() if value is DEFAULT}
    changes: list[Change] = []
    with project.write() as db:
        current = stored(project)
        for key, value in checked.items():
            if key in reset:
                db.execute("DELETE FROM settings WHERE key = ?", [key])
            else:
                db.execute("INSERT INTO settings(key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value", [key, dumps(value)])
        new = _New(project, {k: as_json(v) for k, v in checked.items()})
        done: dict[Callable, str] = {}
        for key, value in checked.items():
            raw_old = current.get(key, DEFAULTS[key])
            try:
                old = rule(key).check(raw_old)
            except ValueError:
                old = raw_old
            meta = _FIELDS[key].metadata
            if dumps(old) == dumps(value):
                effect = "unchanged"
            elif meta["rederive"] is not None:
                fn = meta["rederive"]
                if fn not in done:
                    done[fn] = fn(project, new)
                effect = done[fn]
            else:
                effect = meta["effect"] or ""
            changes.append(Change(key, old, value, effect))
    return changes


def set(project: Project, key: str, value: Any) -> Change:  # noqa: A001 - mirrors get()
    """Check, write and re-derive one setting (see :func:`change`)."""
    return change(project, {key: value})[0]


def all_settings(project: Project) -> dict[str, Any]:
    """Every key's checked value, as plain JSON."""
    cfg = load(project)
    return {k: as_json(getattr(cfg, k)) for k in KEYS}


def environment_note(key: str, value: Any) -> str | None:
    """For ``llm_api_key_env``: whether the named variable is set here (never its value)."""
    if key == "llm_api_key_env" and isinstance(value, str):
        return None if os.environ.get(value) else f"${value} is not set in this shell"
    return None
