# Two commands: `make demo` (set up, build the demo project, open the app) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo lint test perf clean

setup: $(STAMP)

# torch==2.13.0 first: on these machines it resolves to the local CPU build, and the
# unpinned `torch` requirement of sae-lens is then already satisfied (no CUDA download).
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/saegold demo

# Lint (ruff) and type-check (mypy) the code; settings in pyproject.toml, both pinned in [test].
lint: setup
	$(VENV)/bin/ruff check store engine tui
	$(VENV)/bin/mypy saegold   # store, engine and tui under the names they are imported by

test: lint
	$(PY) -m pytest -q -p no:cacheprovider

perf: setup
	for f in tests/perf/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info
