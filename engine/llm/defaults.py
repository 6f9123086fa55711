"""How saegold talks to an LLM endpoint unless told otherwise: the one statement of these
defaults for the client, the label and bench jobs and their command lines (imports nothing,
so ``--help`` can show them).  The model and the key's variable are project settings
(``llm_model``, ``llm_api_key_env`` in :mod:`store.settings`)."""
from __future__ import annotations

CONCURRENCY = 8      # requests in flight at most
TIMEOUT_S = 60.0     # seconds per request
MAX_RETRIES = 5      # retries on 429/5xx/timeouts
MAX_TOKENS = 1024    # the longest answer, sent as max_tokens (a label or a judge's answer is short)
