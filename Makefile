# physagent — `make demo` and `make test` work on a fresh clone with only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo-output
export PHYSAGENT_HOME ?= $(CURDIR)/$(DEMO)/workspace
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install test test-fast lint demo bench clean

install: $(STAMP)

# torch first: the CPU build lies on local disk; a bare `torch` requirement would pull CUDA (GBs).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	env -u PHYSAGENT_HOME $(BIN)/pytest

test-fast: install
	env -u PHYSAGENT_HOME $(BIN)/pytest -m "not slow"

# generate → cluster → histogram → plot, through the CLI, on real Pythia8 + FastJet
demo: install
	@mkdir -p $(DEMO)
	$(BIN)/physagent tools call generate_events --arg process=ttbar --arg n_events=4000 \
	    --arg decay=hadronic --arg pt_hat_min_gev=400 --arg mpi=false --arg seed=42 --json > $(DEMO)/1-events.json
	$(BIN)/physagent tools call cluster_jets --arg events=$$($(BIN)/python -m app.jsonpick $(DEMO)/1-events.json) \
	    --arg radius=1.0 --arg pt_min_gev=350 --json > $(DEMO)/2-jets.json
	$(BIN)/physagent tools call histogram --arg source=$$($(BIN)/python -m app.jsonpick $(DEMO)/2-jets.json) \
	    --arg field=jets.mass --arg object_index=0 --arg bins=40 --arg range_min=0 --arg range_max=300 \
	    --json > $(DEMO)/3-histogram.json
	$(BIN)/physagent tools call plot --arg histograms='["'$$($(BIN)/python -m app.jsonpick $(DEMO)/3-histogram.json)'"]' \
	    --arg labels='["leading large-R jet, boosted ttbar"]' --json > $(DEMO)/4-plot.json
	$(BIN)/physagent history
	$(BIN)/physagent export --script $(DEMO)/reproduce.py
	@$(BIN)/python -m app.jsonpick --report $(DEMO)/1-events.json $(DEMO)/2-jets.json $(DEMO)/3-histogram.json $(DEMO)/4-plot.json

bench: install
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_generation.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
