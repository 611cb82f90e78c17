# The README's two commands are `make run` and `make test`; everything else is what they use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test pytest pytest-milvus gate install install-dev browser lint clean

## Install the assistant, build the index if it is missing, and serve it on http://127.0.0.1:8000
run: $(VENV)/.installed
	$(BIN)/assistant serve

## Install everything (Python packages and Chromium for the browser tests) and run every test,
## then the gold-set regression gate.
test: install-dev browser pytest pytest-milvus gate

pytest: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

# The retrieval and answer tests again, with the vectors in Milvus Lite instead of FAISS files.
pytest-milvus: $(VENV)/.dev-installed
	ASSISTANT_STORE=milvus $(BIN)/python -m pytest tests/answering tests/test_indexer.py \
	  tests/test_cli.py tests/test_evaluation.py tests/service tests/test_milvus_store.py \
	  --deselect tests/test_indexer.py::test_corrupt_index_names_the_rebuild_command

gate: $(VENV)/.dev-installed
	$(BIN)/assistant eval --gold eval/gold.jsonl --corpus corpus --json eval/reports/latest.json --check eval/baseline.json

install: $(VENV)/.installed
install-dev: $(VENV)/.dev-installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned in pyproject.toml to the CPU build; installing it first keeps pip from
	# ever resolving a CUDA build for another package's looser requirement.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## Debian's Chromium and its driver, for the widget's browser test (Playwright's own download
## cannot work offline).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check assistant tests eval
	$(BIN)/ruff format --check assistant tests eval
	$(BIN)/mypy

clean:
	rm -rf $(VENV) index data
