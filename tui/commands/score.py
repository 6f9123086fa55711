"""``saegold score``: taxonomy scores of SAE features (input / output / cross / obscure)."""
from __future__ import annotations

import argparse

from saegold.store.errors import SaegoldError
from saegold.store.feature_spec import parse_feature_spec, stored_feature_ids

from ..cli_args import at_least
from ..safe import inert_line

DESCRIPTION = """\
Score SAE features and sort them into input / output / cross / obscure.

With --model and --sae: load the language model (Hugging Face name or local directory) and
the SAE (sae-lens RELEASE:SAE_ID or a directory written by SAE.save_model; its hook comes
from the SAE's metadata), compute each feature's logit lens (top-20 promoted / suppressed
tokens), its output score on the project's neutral prompt (with the 10 most probable next
tokens and an 8-token greedy continuation under amplification as evidence), its steered continuations (W_dec[j] added
at the SAE's hook at every position, at the KL targets of the steering_targets setting,
sampled from the steering_prompts; --no-steering skips them) and, with
--corpus, one streamed pass over the corpus for its top-K activating contexts, firing
density, max activation, a reservoir of non-activating contexts, a uniform sample of its
activating contexts kept as 10 activation-quantile bins (the examples benchmarks draw
positives from and annotators see across the activation range), and its input score.
Writes go one feature chunk per transaction: Ctrl+C keeps every finished chunk and a
re-run skips done features (unless --redo).  --shard I/N scores the I-th of N disjoint
feature ranges, so N processes can fill one project.

A source is what produced it: its fingerprint records the model (Hub revision, or a digest
of the local directory's files), the SAE (config and a digest of its weights), the dtype and
the settings that change results (neutral prompt, amplification, logit lens k, continuation
tokens; with --corpus: the corpus by content, --text-field, --doc-sep, --ctx-len, --top-k,
--negatives, --quantile-examples, --verified-negatives, --max-contexts, --max-tokens).  A run into a source of the same name made from
anything else is refused (exit 2, nothing written, one line saying what differs): give
--source NAME for a new source, or --redo to replace it (then every feature it holds is
rescored).

With --from-stored: no model; input scores of stored features (e.g. imported from
Neuronpedia) from their stored activations and promoted tokens.  Output scores stay empty
until a model run fills them.  The features it leaves out are listed per source with the
reason (no activating examples, no logit-lens tokens, already scored) and what would fill them.

Corpus: a text file, a .jsonl file with a "text" field, a directory of those, or a Hugging
Face dataset hf:NAME[:SPLIT] (streamed).  A text file is split into documents by --doc-sep:
paragraphs separated by blank lines, one document per line, or (auto, the default) JSON Lines
when its lines are JSON objects with the text field whatever its name, else paragraphs when
it has blank lines, else one document per line.  How each file is read is printed first.
Documents never share a context without a BOS between them."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score SAE features (logit lens, input/output scores, category)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="causal LM: Hugging Face name or local directory")
    p.add_argument("--sae", help="SAE: sae-lens RELEASE:SAE_ID or a local SAE.save_model directory")
    p.add_argument("--corpus", help="text/JSONL file or directory, or hf:DATASET[:SPLIT]")
    p.add_argument("--text-field", default="text", help="JSONL / dataset text field (default: text)")
    p.add_argument("--doc-sep", choices=("auto", "blank", "line"), default="auto",
                   help="how a text file splits into documents: blank = paragraphs separated by blank "
                        "lines, line = one document per line, auto (default) = JSON Lines when its lines "
                        "are JSON objects with the text field, else paragraphs when it has blank lines, "
                        "else one document per line; the choice is printed per file")
    p.add_argument("--ctx-len", type=int, default=64, help="tokens per context, BOS included (default 64)")
    p.add_argument("--top-k", type=int, default=100, help="top activating contexts kept per feature (default 100)")
    p.add_argument("--negatives", type=at_least(0), default=20,
                   help="non-activating contexts kept per feature for benchmarks (default 20)")
    p.add_argument("--verified-negatives", action=argparse.BooleanOptionalAction, default=False,
                   help="store, per feature, --negatives 'hard' negatives (top contexts of the 3 features "
                        "nearest by decoder cosine) and as many other features' top contexts, each kept only "
                        "where the model shows the feature silent (for bench --negatives hard / other-features; "
                        "default: off, and bench then marks other-features negatives unverified); candidates "
                        "come from the features this run scores, so a sharded or resumed run would draw them "
                        "among its own features and differ from one full run: off by default for that reason")
    p.add_argument("--quantile-examples", type=at_least(0), default=50,
                   help="activating contexts sampled uniformly per feature and stored in 10 activation-"
                        "quantile bins (default 50; 0: none)")
    p.add_argument("--features", help="feature indices and inclusive ranges, e.g. 0-999 or 0-9,42, each "
                                      "within the SAE's width (--from-stored: stored) (default: all)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:1 ... (default: cuda if available, cuda:LOCAL_RANK under torchrun)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="model dtype (default: bfloat16 on CUDA, float32 on CPU); the SAE runs in float32")
    p.add_argument("--batch-size", type=int, default=32, help="contexts per forward pass (default 32)")
    p.add_argument("--feature-batch", type=int, default=256,
                   help="features per output-score batch and per write transaction (default 256)")
    p.add_argument("--continuation-tokens", type=at_least(0), default=8,
                   help="greedy continuation length under amplification; 0 skips it (default 8)")
    p.add_argument("--no-steering", action="store_true",
                   help="skip the steered continuations (settings steering_targets, steering_prompts, "
                        "steering_tokens, steering_temperature)")
    p.add_argument("--max-contexts", type=at_least(1), help="stop the corpus pass after this many contexts")
    p.add_argument("--max-tokens", type=at_least(1), help="stop the corpus pass after this many tokens")
    p.add_argument("--shard", help="I/N: score only the I-th of N disjoint feature ranges; auto: from "
                                   "torchrun (RANK/WORLD_SIZE) or a Slurm job array")
    p.add_argument("--source", help="write into the source of this name, or start a new one (default: "
                                    "MODEL/SAE from the model's and SAE's names); --from-stored: score this "
                                    "stored source")
    p.add_argument("--redo", action="store_true", help="recompute features that are already scored")
    p.add_argument("--from-stored", action="store_true",
                   help="no model: input scores from stored activations (Neuronpedia imports)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.from_stored:
        if args.model or args.sae or args.corpus:
            raise SaegoldError("--from-stored uses no --model, --sae or --corpus")
        return _from_stored(args)
    if not args.model or not args.sae:
        raise SaegoldError("give --model and --sae (or --from-stored for imported features)")
    for flag in ("ctx_len", "top_k", "batch_size", "feature_batch"):
        if getattr(args, flag) < 1:
            raise SaegoldError(f"--{flag.replace('_', '-')} must be at least 1")
    from saegold.engine.scoring import corpus as corpus_mod
    from saegold.engine.scoring.job import score
    from saegold.store.db import default_path, open_project

    from ..progress import progress_bars

    if args.corpus:
        for line in corpus_mod.reading(corpus_mod.resolve(args.corpus, args.text_field, args.doc_sep)):
            print(f"corpus {inert_line(line)}")
    with open_project(args.db or default_path()) as project, progress_bars() as progress:
        report = score(
            project, model=args.model, sae=args.sae, corpus=args.corpus, ctx_len=args.ctx_len,
            top_k=args.top_k, n_negatives=args.negatives, n_quantile=args.quantile_examples,
            verified_negatives=args.verified_negatives,
            features=args.features, device=args.device,
            dtype=args.dtype, batch_size=args.batch_size, feature_batch=args.feature_batch, redo=args.redo,
            shard=args.shard, max_contexts=args.max_contexts, max_tokens=args.max_tokens,
            continuation_tokens=args.continuation_tokens, source=args.source, text_field=args.text_field,
            doc_sep=args.doc_sep, steering=not args.no_steering, progress=progress,
        )
        for note in report.notes:
            print(inert_line(note))
        print(f"source {inert_line(report.source)} (fingerprint {report.fingerprint}) on {report.device}: "
              f"{report.features} features in scope")
        print(f"  output scores: {report.output_scored} computed, {report.output_skipped} already done"
              + (f" (fast path {report.fast_path}, matches the per-feature reference to "
                 f"{report.self_check:.1e})" if report.self_check is not None else ""))
        st = report.steering
        if st is not None:
            print(f"  steering:      {st.steered} features steered, {st.skipped} already done"
                  + (f" ({st.path}, matches the per-feature reference to {st.self_check:.1e})"
                     if st.self_check is not None else "")
                  + (f"; {st.unreached} (feature, target) pairs did not reach their target KL (stored with "
                     "the KL reached, flagged)" if st.unreached else ""))
        if report.f_max is not None and report.f_max <= 0:
            print("  warning: no SAE feature is active at the neutral prompt's last token, so amplification "
                  "(amp * max f) changes nothing; choose another prompt (setting neutral_prompt)")
        if args.corpus:
            print(f"  input scores:  {report.input_scored} computed, {report.input_skipped} already done "
                  f"({report.n_contexts} contexts, {report.n_tokens} tokens)")
        else:
            print("  input scores:  none (no --corpus)")
        print("  " + ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds.items()))
        _print_categories(project, report.source)
    return 0


def _from_stored(args: argparse.Namespace) -> int:
    from saegold.engine.scoring.inputscore import score_stored, stored_skips
    from saegold.store.db import default_path, open_project

    from ..progress import progress_bars

    feats = parse_feature_spec(args.features) if args.features is not None else None
    with open_project(args.db or default_path()) as project, progress_bars() as progress:
        if feats is not None:   # no SAE here: the bound is what is stored for the source
            stored_feature_ids(project, feats, args.source)
        skips = stored_skips(project, source=args.source, features=feats, redo=args.redo)   # before scoring
        n = score_stored(project, source=args.source, features=feats, redo=args.redo, progress=progress)
        print(f"input scores from stored activations: {n} features")
        print_skips(skips)
        if args.source:
            _print_categories(project, args.source)
    return 0


def _print_categories(project, source: str) -> None:
    rows = project.query(
        "SELECT COALESCE(t.category, '(incomplete)') AS category, COUNT(*) AS n FROM taxonomy_scores t "
        "JOIN features f ON f.id = t.feature_id JOIN sources s ON s.id = f.source_id WHERE s.name = ? "
        "GROUP BY 1 ORDER BY 1", [source])
    if rows:
        print("  categories: " + ", ".join(f"{r['category']} {r['n']}" for r in rows))



def print_skips(skips) -> None:
    """The features ``score --from-stored`` left out, by reason, with what would fill them."""
    total = sum(n for _, per_source in skips for n in per_source.values())
    if not total:
        return
    print(f"not scored: {total:,} feature(s)")
    for (reason, fill), per_source in skips:
        where = ", ".join(f"{inert_line(name)} {n:,}" for name, n in per_source.items())
        print(f"  {sum(per_source.values()):,}: {reason} [{where}]")
        print(f"    to score them: {fill}")
