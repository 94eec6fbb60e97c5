# prune8 — each target installs what it needs into .venv first, so a fresh clone
# needs only Python 3.10+, Node 18+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BOARD  ?= esp32
PORT   ?=
NATIVE ?=

STAMP := $(VENV)/.prune8-installed
# The virtual board's Node side: package.json/package-lock.json pin the MicroPython VM.
VBOARD_NODE := host/prune8_host/vboard

.PHONY: install test demo bench build clean vboard

$(STAMP): pyproject.toml $(VBOARD_NODE)/package.json $(VBOARD_NODE)/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	cd $(VBOARD_NODE) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

install: $(STAMP)

test: install
	$(BIN)/python -m pytest

demo: install
	$(BIN)/prune8 demo $(if $(PORT),--port $(PORT))

vboard: install
	$(BIN)/prune8 vboard --board $(BOARD) $(if $(BAUD),--baud $(BAUD)) $(if $(FLASH),--flash $(FLASH))

bench: install
	$(BIN)/python bench/bench_twin.py

clean:
	rm -rf build .pytest_cache .hypothesis
