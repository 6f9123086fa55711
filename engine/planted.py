"""A tiny real causal LM and sae-lens SAE with features planted in each of the four categories.

Built in code in a few seconds on a CPU and saved with ``save_pretrained`` /
``SAE.save_model``, so tests and ``saegold demo`` load it through the real loading paths.

* The model is a 3-layer Llama (transformers) over a word-level tokenizer of a few hundred
  English words (``tokenizers`` WordLevel wrapped in ``PreTrainedTokenizerFast``).  Token
  embeddings are large and the layers small, so the residual stream at a position is mostly
  its token's embedding; the unembedding rows are short, so the clean next-token
  distribution is nearly flat.
* The SAE (``StandardSAE``, hook ``blocks.1.hook_resid_post``) holds planted features:

  - **cross**: the encoder detects one word, the decoder points along that word's
    unembedding (input score 1, strong output);
  - **input**: the same detector with a short decoder along the word's unembedding plus a
    long component along a residual direction no logit reads (the word tops the logit lens,
    but amplifying or steering the feature only flattens the output through the final norm);
  - **output**: the encoder fires on many unrelated words (none in the feature's logit
    lens), the decoder is long along one word's unembedding;
  - **obscure**: encoder as for output, and a diffuse decoder spread over many words;

  plus random features.  :func:`build_planted` returns the expected category of each
  planted feature.
* :data:`DEMO_CORPUS` is a bundled corpus of short paragraphs over the same vocabulary
  (written once by :func:`write_demo_corpus`; regenerate with
  ``python -m engine.planted --write-corpus``).
"""
from __future__ import annotations

import argparse
import random
from importlib import resources
from pathlib import Path

import torch

WORDS: dict[str, list[str]] = {
    "function": ["the", "a", "and", "but", "of", "in", "on", "at", "to", "with", "from", "my", "your", "his",
                 "her", "our", "their", "is", "was", "were", "it", "they", "we", "you", "he", "she", "i",
                 "this", "that", "very", "so", "then", "when", "because", "after", "before", "near", "under",
                 "over", "every", "some", "all", "not", "experience", "think", "always", "never", "again",
                 "there", "here", ",", "."],
    "animal": ["dog", "cat", "horse", "bird", "fish", "lion", "tiger", "rabbit", "mouse", "wolf", "bear",
               "fox", "owl", "deer", "whale", "snake", "goat", "sheep", "duck", "frog"],
    "food": ["bread", "cheese", "apple", "soup", "rice", "coffee", "tea", "cake", "pizza", "salad",
             "butter", "honey", "milk", "egg", "orange", "pepper", "sugar", "salt", "lemon", "grape"],
    "weather": ["rain", "snow", "wind", "storm", "sun", "cloud", "fog", "thunder", "ice", "frost"],
    "place": ["city", "village", "forest", "river", "ocean", "mountain", "garden", "market", "school",
              "hospital", "library", "kitchen", "station", "beach", "desert", "island", "valley",
              "castle", "harbor", "museum"],
    "person": ["doctor", "teacher", "farmer", "pilot", "artist", "engineer", "nurse", "baker", "sailor",
               "writer", "singer", "lawyer", "chef", "student", "king", "queen", "friend", "mother",
               "father", "child"],
    "instrument": ["guitar", "piano", "drum", "violin", "flute", "trumpet", "harp", "cello"],
    "color": ["red", "blue", "green", "yellow", "purple", "black", "white", "golden", "silver", "brown"],
    "adjective": ["big", "small", "old", "young", "happy", "sad", "quiet", "loud", "bright", "dark", "warm",
                  "cold", "fast", "slow", "strange", "gentle", "brave", "tired", "hungry", "beautiful",
                  "clever", "lonely", "proud", "calm", "wild"],
    "verb": ["walked", "ran", "sang", "played", "cooked", "wrote", "found", "lost", "watched", "painted",
             "built", "opened", "closed", "carried", "visited", "loved", "saw", "heard", "ate", "drank",
             "followed", "remembered", "forgot", "bought", "sold"],
    "weather_verb": ["fell", "came", "moved", "passed", "returned", "stayed"],
    "time": ["morning", "evening", "night", "today", "yesterday", "winter", "summer", "spring", "autumn",
             "monday", "friday", "week", "year"],
    "thing": ["book", "letter", "door", "window", "car", "train", "boat", "bridge", "road", "house", "table",
              "chair", "lamp", "clock", "key", "box", "ship", "tree", "flower", "stone", "fire", "water",
              "light", "dream", "story", "song", "map", "coin", "ring", "hat"],
    "number": ["one", "two", "three", "four", "five", "ten", "hundred"],
}
SPECIAL = ["<bos>", "<eos>", "<pad>", "<unk>"]
HOOK = "blocks.1.hook_resid_post"
D_MODEL = 256
N_LAYERS = 3
PER_CATEGORY = 6
DEAD = 0            # the residual coordinate the unembedding ignores (lm_head column 0 is zero)
N_RANDOM = 24
DEMO_CORPUS = "demo_corpus.txt"
# Steering settings for the planted model (``saegold demo`` sets them): its short
# unembedding rows keep every next-token distribution close to flat, so KL(clean || steered)
# saturates near 0.2 nats and the default targets (0.25, 0.5) are out of its reach; its
# word-level vocabulary has no "explanation", "simple" or ":".
STEERING_TARGETS = [0.05, 0.1]
STEERING_PROMPTS = ["I think", "We", "From my experience,"]

# Words planted as token detectors (frequent in the demo corpus's templates).
CROSS_WORDS = ["ocean", "doctor", "guitar", "coffee", "storm", "lion"]
INPUT_WORDS = ["forest", "teacher", "piano", "cheese", "snow", "tiger"]
OUTPUT_WORDS = ["castle", "pilot", "violin", "honey", "thunder", "whale"]


def vocabulary() -> list[str]:
    """Every word once, in a fixed order (specials first)."""
    seen: dict[str, None] = {}
    for group in WORDS.values():
        for w in group:
            seen.setdefault(w, None)
    return SPECIAL + list(seen)


def build_tokenizer():
    """Word-level tokenizer (lower-cased, punctuation split off) as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w if w in SPECIAL else "\u2581" + w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Metaspace(prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def build_model(seed: int = 0):
    """The tiny Llama: big token embeddings, small layers, short unembedding rows."""
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = vocabulary()
    cfg = LlamaConfig(
        vocab_size=len(vocab), hidden_size=D_MODEL, intermediate_size=2 * D_MODEL, num_hidden_layers=N_LAYERS,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=1, pad_token_id=2, initializer_range=0.02,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 1.0)              # |E[t]| ~ sqrt(d)
        u = torch.randn(len(vocab), D_MODEL)
        model.lm_head.weight.copy_(0.25 * u / u.norm(dim=1, keepdim=True))
        model.lm_head.weight[:, DEAD] = 0.0                            # a direction no logit reads
    return model.eval()


def build_sae(model, seed: int = 0):
    """The planted SAE and ``{feature index: expected category}``."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    vocab = vocabulary()
    idx = {w: i for i, w in enumerate(vocab)}
    g = torch.Generator().manual_seed(seed + 1)
    E = model.model.embed_tokens.weight.detach()
    U = model.lm_head.weight.detach()
    n_planted = 4 * PER_CATEGORY
    d_sae = n_planted + N_RANDOM
    W_enc = torch.zeros(D_MODEL, d_sae)
    b_enc = torch.zeros(d_sae)
    W_dec = torch.zeros(d_sae, D_MODEL)
    expected: dict[int, str] = {}
    content = [w for k, ws in WORDS.items() if k not in ("function",) for w in ws]

    def lens_top(direction: torch.Tensor, k: int = 20) -> set[int]:
        return set((U @ _unit(direction)).topk(k).indices.tolist())

    def detector(j: int, word: str) -> None:
        e = _unit(E[idx[word]])
        W_enc[:, j] = 2.0 * e                              # act = 2 (e.h - |E[word]| / 2): the word only
        b_enc[j] = -2.0 * 0.5 * float(E[idx[word]].norm())

    def diffuse_encoder(j: int, avoid: set[int]) -> None:
        """Fires on ten unrelated words; orthogonal to the embeddings of ``avoid`` (the
        feature's logit-lens words), so none of those is ever its max-activating token."""
        pool = [w for w in content if idx[w] not in avoid]
        words = [pool[i] for i in torch.randperm(len(pool), generator=g)[:10].tolist()]
        w = sum(_unit(E[idx[x]]) for x in words)
        basis, _ = torch.linalg.qr(E[sorted(avoid)].T)                # [d, |avoid|]
        w = w - basis @ (basis.T @ w)
        W_enc[:, j] = 2.0 * _unit(w)
        b_enc[j] = -2.0

    j = 0
    for word in CROSS_WORDS:
        detector(j, word)
        W_dec[j] = 4.0 * _unit(U[idx[word]])
        expected[j] = "cross"
        j += 1
    dead = torch.zeros(D_MODEL)
    dead[DEAD] = 1.0
    for word in INPUT_WORDS:
        detector(j, word)
        # Along the word's unembedding (it tops the logit lens) but mostly along the dead
        # direction: pushing the residual that way only dilutes it through the final norm,
        # so steering flattens the output instead of promoting the word.
        W_dec[j] = 0.03 * _unit(U[idx[word]]) + 4.0 * dead
        expected[j] = "input"
        j += 1
    for word in OUTPUT_WORDS:
        W_dec[j] = 4.0 * _unit(U[idx[word]])
        diffuse_encoder(j, lens_top(W_dec[j]))
        expected[j] = "output"
        j += 1
    for _ in range(PER_CATEGORY):
        spread = torch.randperm(len(vocab), generator=g)[:120]
        W_dec[j] = 2.0 * _unit(U[spread].sum(dim=0))
        diffuse_encoder(j, lens_top(W_dec[j]))
        expected[j] = "obscure"
        j += 1
    W_enc[:, j:] = torch.randn(D_MODEL, N_RANDOM, generator=g) / D_MODEL ** 0.5
    b_enc[j:] = -0.5
    W_dec[j:] = torch.randn(N_RANDOM, D_MODEL, generator=g) / D_MODEL ** 0.5

    cfg = StandardSAEConfig(d_in=D_MODEL, d_sae=d_sae, metadata=SAEMetadata(
        hook_name=HOOK, model_name="saegold-planted", hook_head_index=None, prepend_bos=True, context_size=64))
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(W_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_dec.zero_()
    return sae.eval(), expected


def build_planted(directory: str | Path, seed: int = 0, *, progress=None) -> tuple[Path, Path, dict[int, str]]:
    """Build and save the planted model and SAE under ``directory``.

    Returns ``(model_dir, sae_dir, expected_categories)``; load them with
    ``saegold score --model MODEL_DIR --sae SAE_DIR``.  ``progress(stage, done, total)``
    hears of each of the four steps."""
    from transformers.utils import logging as hf_logging

    say = progress or (lambda stage, done, total: None)
    stage, steps = "build planted model and SAE", 4
    say(stage, 0, steps)
    hf_logging.disable_progress_bar()
    directory = Path(directory)
    model_dir, sae_dir = directory / "planted-model", directory / "planted-sae"
    model = build_model(seed)
    tokenizer = build_tokenizer()
    say(stage, 1, steps)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    say(stage, 2, steps)
    sae, expected = build_sae(model, seed)
    say(stage, 3, steps)
    sae.save_model(sae_dir)
    say(stage, 4, steps)
    return model_dir, sae_dir, expected


# -- demo corpus -----------------------------------------------------------------------

_TEMPLATES = [
    "the {adjective} {animal} {verb} the {thing} near the {place} .",
    "my {person} {verb} a {adjective} {thing} in the {time} .",
    "from my experience , the {food} in the {place} is {adjective} .",
    "{pronoun} {verb} the {color} {thing} before the {weather} {weather_verb} .",
    "in the {time} , the {weather} {weather_verb} over the {place} .",
    "the {person} played the {instrument} and the {animal} {verb} .",
    "{number} {adjective} {animal} {verb} to the {place} with the {person} .",
    "we ate {food} and {food} at the {place} after the {weather} .",
    "the {instrument} was {adjective} , but the {person} {verb} it again .",
    "there was {color} {weather} over the {place} every {time} .",
]
_PRONOUNS = ["i", "we", "you", "they", "he", "she"]


def demo_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pools = {k: v for k, v in WORDS.items() if k != "function"}
    pools["pronoun"] = _PRONOUNS
    out = []
    for _ in range(n):
        template = rng.choice(_TEMPLATES)
        out.append(_fill(template, pools, rng))
    return out


def _fill(template: str, pools: dict[str, list[str]], rng: random.Random) -> str:
    words = []
    for part in template.split():
        if part.startswith("{") and part.endswith("}"):
            words.append(rng.choice(pools[part[1:-1]]))
        else:
            words.append(part)
    text = " ".join(words).replace(" .", ".").replace(" ,", ",")
    return text[0].upper() + text[1:]


def write_demo_corpus(path: str | Path, n_sentences: int = 4000, seed: int = 0) -> Path:
    """Short paragraphs (2-4 sentences) separated by blank lines."""
    rng = random.Random(seed + 7)
    sentences = demo_sentences(n_sentences, seed)
    paragraphs, i = [], 0
    while i < len(sentences):
        k = rng.randint(2, 4)
        paragraphs.append(" ".join(sentences[i:i + k]))
        i += k
    path = Path(path)
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def demo_corpus_path() -> Path:
    """The bundled demo corpus."""
    return Path(str(resources.files("saegold.engine.data").joinpath(DEMO_CORPUS)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the planted model/SAE, or rewrite the demo corpus.")
    parser.add_argument("--write-corpus", action="store_true", help="rewrite engine/data/demo_corpus.txt")
    parser.add_argument("--build", metavar="DIR", help="build the planted model and SAE into DIR")
    args = parser.parse_args(argv)
    if args.write_corpus:
        print(write_demo_corpus(Path(__file__).parent / "data" / DEMO_CORPUS))
    if args.build:
        model_dir, sae_dir, expected = build_planted(args.build)
        print(f"model {model_dir}\nsae {sae_dir}")
        for j, cat in expected.items():
            print(f"  feature {j}: {cat}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
