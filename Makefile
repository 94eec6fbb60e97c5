# prune8 — each target installs what it needs into .venv first, so a fresh clone
# needs only Python 3.10+, Node 18+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BOARD  ?= esp32
PORT   ?=
NATIVE ?=

STAMP := $(VENV)/.prune8-installed
EVAL_STAMP := $(VENV)/.prune8-eval-installed
# The virtual board's Node side: package.json/package-lock.json pin the MicroPython VM.
VBOARD_NODE := host/prune8_host/vboard

.PHONY: install test test-peers test-slow lint demo bench build eval clean vboard package-json

$(STAMP): pyproject.toml firmware/prune8/__init__.py $(VBOARD_NODE)/package.json $(VBOARD_NODE)/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	cd $(VBOARD_NODE) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

install: $(STAMP)

# The eval extra (PyTorch): make eval and make test-peers need it; make test does not
# install it (1.3 GB of PyTorch for a handful of agreement tests).
$(EVAL_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,eval]'
	touch $@

# The lint (ruff, pinned in pyproject.toml: pyflakes and import order) runs first.
LINTED := host firmware boards tests bench examples eval

lint: $(STAMP)
	$(BIN)/ruff check --no-cache $(LINTED)

# The whole suite but the peers group (pyproject.toml's addopts deselect it), on
# TEST_WORKERS processes (pytest-xdist; each takes whole modules, so a module's shared
# board stays one board); it refuses to pass when it collected fewer tests than the suite
# has (tests/conftest.py). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(STAMP) lint
	$(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

# Agreement with PyTorch's pruning (tests marked `peers`): opt-in, CI may skip it.
test-peers: $(EVAL_STAMP)
	$(BIN)/python -m pytest -m peers

# deploy, run and test-board over --port on a virtual board as slow as a real ESP32
# (paced at its baud, its flash and CPU timing), beside a CPU hog; and the deep property
# runs of hostile .tflite files (thousands of random examples each): tests marked `slow`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

demo: install
	$(BIN)/prune8 demo $(if $(PORT),--port $(PORT))

vboard: install
	$(BIN)/prune8 vboard --board $(BOARD) $(if $(BAUD),--baud $(BAUD)) $(if $(FLASH),--flash $(FLASH))

bench: install
	$(BIN)/python bench/bench_twin.py
	$(BIN)/python bench/bench_transfer.py
	$(BIN)/python bench/bench_sparse.py examples/digits_mlp.npz
	$(BIN)/python bench/bench_inference.py
	$(BIN)/python bench/bench_channels.py
	$(BIN)/python bench/run_on_board.py bench/bench_board.py $(if $(PORT),--port $(PORT))
	$(BIN)/python bench/bench_stream.py $(if $(PORT),--port $(PORT))
	$(BIN)/python bench/bench_kernels.py
	$(BIN)/python bench/bench_prune.py
	$(BIN)/python bench/heap_table.py

# Accuracy vs sparsity on the digits model: docs/eval/accuracy.{csv,png}, README.md; the
# digits CNN as a .tflite: docs/eval/cnn.{csv,png,md}; channel pruning and recovery on the
# digits CNN and the MobileNet: docs/eval/channels.{csv,png,md}; the board check: docs/eval/board.md
eval: $(EVAL_STAMP)
	PYTHONPATH=eval $(BIN)/python -m prune8_eval.evaluate --out docs/eval
	PYTHONPATH=eval $(BIN)/python -m prune8_eval.cnn_eval --out docs/eval
	PYTHONPATH=eval $(BIN)/python -m prune8_eval.channels_eval --out docs/eval
	PYTHONPATH=eval $(BIN)/python -m prune8_eval.onboard --out docs/eval $(if $(PORT),--port $(PORT))

# NATIVE=1 builds every profile (xtensawin and rv32imc: docs/kernels.md) unless BOARD= is given
BUILD_BOARDS = $(if $(filter command line environment,$(origin BOARD)),$(BOARD),$(if $(NATIVE),esp32 esp32s3 esp32c3,$(BOARD)))

build: install
	for b in $(BUILD_BOARDS); do $(BIN)/prune8 build --board $$b $(if $(NATIVE),--native) || exit 1; done

# firmware/package.json, mip's index of the firmware's files, made from the sources
# (tests/board/test_mip.py fails when it is stale)
package-json: install
	$(BIN)/python -c "from prune8_host.device.build import mip_package; \
	open('firmware/package.json', 'w').write(mip_package())"

clean:
	rm -rf build .pytest_cache .hypothesis
