# The README's two commands are `make run` and `make test`; everything else is what they use.

# The interpreter of the virtual environment: the first of python3.13, python3.12, python3.11 and
# python3 that runs, is 3.11-3.13 (pyproject.toml's requires-python) and can make a venv (Debian
# ships ensurepip apart, in python3-venv). Being on the PATH is not enough: pyenv's shims answer
# for versions that are installed but not selected. `make run PYTHON=/path/to/python3.12` picks one.
PYTHON_OK := import sys, ensurepip; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c '$(PYTHON_OK)' >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
PYTHON_CANDIDATES := python3.13, python3.12, python3.11 and python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test pytest pytest-milvus gate install install-torch install-dev browser lint clean

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
	ASSISTANT_STORE=milvus $(BIN)/python -m pytest -m "not llm_server" tests/answering tests/test_indexer.py \
	  tests/test_cli.py tests/test_evaluation.py tests/service tests/test_milvus_store.py \
	  --deselect tests/test_indexer.py::test_corrupt_index_names_the_rebuild_command

gate: $(VENV)/.dev-installed
	$(BIN)/assistant eval --gold eval/gold.jsonl --corpus corpus --json eval/reports/latest.json --check eval/baseline.json

install: $(VENV)/.installed
install-torch: $(VENV)/.torch-installed
install-dev: $(VENV)/.dev-installed

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ] || ! $(PYTHON) -c '$(PYTHON_OK)' >/dev/null 2>&1; then \
		echo "make: needs Python 3.11, 3.12 or 3.13 with its venv module, and found none" \
			"(tried $(or $(PYTHON),$(PYTHON_CANDIDATES)))." >&2; \
		echo "  Install one (Debian/Ubuntu: sudo apt-get install python3 python3-venv;" \
			"or pyenv install 3.12), or name it: make run PYTHON=/path/to/python3.12" >&2; \
		exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# No torch: the default embedder and the reader ship as ONNX models in the package. The
	# Slack bot's extra too (slack_bolt, slack_sdk: small), so that setting the Slack tokens is
	# all it takes to turn it on.
	$(BIN)/python -m pip install --quiet -e '.[slack]'
	touch $@

# The torch extra (the torch and onnx embedding backends, other models, exporting), CPU build.
$(VENV)/.torch-installed: $(VENV)/.installed
	# torch is pinned in pyproject.toml; installing its CPU build first keeps pip from ever
	# resolving a CUDA build for another package's looser requirement. PyPI has no CPU builds of
	# torch for Linux (its torch pulls in CUDA, gigabytes): unless the configured indexes hold
	# one (this machine's disk does, for Python 3.11), it comes from PyTorch's own CPU index.
	$(BIN)/python -m pip install --quiet torch==2.13.0+cpu 2>/dev/null || \
		$(BIN)/python -m pip install --quiet torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install --quiet -e '.[slack,torch]'
	touch $@

# Training and the tests need torch: its CPU build goes in first (above).
$(VENV)/.dev-installed: $(VENV)/.torch-installed
	# llama.cpp (the llm-server extra) builds from source once; its multimodal library is not
	# needed and is a third of the build. pip caches the wheel, so later installs are quick.
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/python -m pip install --quiet -e '.[dev]'
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
