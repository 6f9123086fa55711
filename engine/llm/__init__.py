"""LLM access for every area: one cached, retrying, rate-limited client (:mod:`.client`)
over the openai SDK, and a local OpenAI-compatible stand-in server for tests and the demo
(:mod:`.standin_server`)."""
