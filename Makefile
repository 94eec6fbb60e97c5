# prune8 — each target installs what it needs into .venv first, so a fresh clone
# needs only Python 3.10+, Node 18+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BOARD  ?= esp32
PORT   ?=
NATIVE ?=

STAMP := $(VENV)/.prune8-installed

.PHONY: install test demo bench build clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

test: install
	$(BIN)/python -m pytest

demo: install
	$(BIN)/prune8 demo $(if $(PORT),--port $(PORT))

bench: install
	$(BIN)/python bench/bench_twin.py
	$(BIN)/python bench/bench_sparse.py

build: install
	$(BIN)/prune8 build --board $(BOARD) $(if $(NATIVE),--native)

clean:
	rm -rf build .pytest_cache .hypothesis
