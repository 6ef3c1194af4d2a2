# Two commands do all set-up (see README.md):
#   make demo   install into .venv and run the main job on the demo cohort
#   make test   install into .venv (and the Debian packages the tests need) and run every check
#   make demo-data   rebuild the dashboard's shipped demo database data/demo.duckdb (a few minutes)
#   make demo-model  re-train the shipped demo model from a seeded simulated cohort (~1 h)
#   make benchmark-models  regenerate the paper's tables 2 and 3 in BENCHMARKS.md (~1 h)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= out/demo

.PHONY: demo demo-data demo-model benchmark-models test lint system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

system-deps:
	@scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .

# pytest exits 5 when it collects no tests: that is a failure here, not a pass.
test: $(STAMP) system-deps lint
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

demo: $(STAMP)
	@scripts/demo.sh $(DEMO_DIR)

# The dashboard's shipped demo database (data/demo.duckdb); `make demo` never rebuilds it.
demo-data: $(STAMP)
	@scripts/demo-data.sh out/demo-data

# Re-train the shipped demo model (data/demo_model.keras) from its seeded simulated cohort.
demo-model: $(STAMP)
	@scripts/train-demo-model.sh out/demo-model

# The paper's tables 2 and 3 on the demo model's cohort, tested on a held-out one.
benchmark-models: $(STAMP)
	@scripts/benchmark-models.sh out/bench-models

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache *.egg-info
