"""Prompt texts of the label methods.

``eleuther_acts_top5`` follows the format of EleutherAI Delphi's default explainer (marked
examples ``Example i: ... <<tokens>> ...``, optional ``Activations: ("tok", 7), ...`` lines,
a system prompt asking for a concise explanation, few-shot turns, the answer after
``[EXPLANATION]:``); the wording and few-shot examples here are saegold's own.
"""
from __future__ import annotations

EXPLAINER_SYSTEM = """\
You are an AI researcher explaining what a single feature (latent) of a language model \
responds to.

You will see several text examples on which the feature fires. In each example, the tokens \
where the feature fires strongly are wrapped in delimiters like <<this>>; consecutive strong \
tokens share one pair of delimiters <<like this>>.{activations}

- Describe briefly what the marked tokens have in common, and the context around them when \
it matters.
- Summarize the pattern instead of listing the marked tokens; skip examples that tell you \
nothing.
- Never mention the << >> delimiters in your answer.
- Give one explanation, not a list of candidates; keep it short.
- The last line of your answer must be the explanation, written as: [EXPLANATION]: <explanation>
"""

EXPLAINER_ACTIVATIONS_NOTE = """
Below each example, an Activations line lists the marked tokens with the feature's strength \
on each, from 0 (weak) to 10 (strongest seen)."""

# Few-shot turns (user, assistant), in the same format as the real request.
EXPLAINER_SHOTS = [
    (
        "Example 1: the meeting dragged on for three <<hours>> and nobody\n"
        "Activations: (\" hours\", 9)\n"
        "Example 2: please wait 10 <<minutes>> before you\n"
        "Activations: (\" minutes\", 8)\n"
        "Example 3: she stayed for two <<weeks>> in Lisbon\n"
        "Activations: (\" weeks\", 6)\n",
        "[EXPLANATION]: Units of time right after a number, in durations.",
    ),
    (
        "Example 1: result = compute(values, axis=0<<)>>\n"
        "Activations: (\")\", 10)\n"
        "Example 2: if len(items<<))>> > 3:\n"
        "Activations: (\"))\", 7)\n"
        "Example 3: print(format_row(row, width<<)>>)\n"
        "Activations: (\")\", 8)\n",
        "[EXPLANATION]: Closing parentheses that end a function call's arguments in code.",
    ),
]

BAEZ_SYSTEM = """\
You are an AI researcher naming a single feature (latent) of a language model.

The feature was found on {n} text examples. For each one, a natural-language autoencoder \
(NLA), a model that reads the language model's internal activation and describes it in \
words, explained the activation at the token where the feature fired most strongly{scope}. \
Each explanation carries an activation score from 1 to 10: how strongly the feature fired \
on that example, relative to its strongest example.

- Find what the explanations have in common; this is what the feature represents.
- Give more weight to explanations with higher activation scores.
- Ignore details that appear in only one explanation.
- Answer with a label of at most 8 words.
- The last line of your answer must be the label, written as: [EXPLANATION]: <label>
"""

BAEZ_SCOPE_LAST = " (only the part of each explanation about that final token is shown)"

OUTPUT_SYSTEM = """\
You are an AI researcher naming a single feature (latent) of a language model by its \
effect on the model's output: what the model says or does next when the feature is active.

You will see the tokens the feature's direction promotes through the unembedding (logit \
lens){extra}. Tokens are shown in quotes, exactly as the tokenizer spells them (a leading \
space is part of the token).

- Describe the output behaviour the feature drives, e.g. "says the word 'because'" or \
"continues with French words"; say what kind of tokens it pushes the model to produce.
- Do not describe what text the feature responds to: you cannot see that here.
- Answer with a label of at most 12 words.
- The last line of your answer must be the label, written as: [EXPLANATION]: <label>
"""

REPAIR = ("Your answer could not be used: {problem}. Answer again. The last line of your answer "
          "must be \"[EXPLANATION]: \" followed by the {what}{limit}.")
